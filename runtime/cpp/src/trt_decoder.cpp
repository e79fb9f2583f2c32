// The decoder stage on TensorRT (trt_decoder.hpp). Every shape is static (batch 1), so every
// device buffer is allocated once; only the cache addresses move between calls (ping-pong).
#include "trt_decoder.hpp"

#include <algorithm>
#include <cstring>

#include "pomrt/decoder_engines.hpp"
#include "pomrt/error.hpp"
#include "pomrt/pinned.hpp"

using namespace nvinfer1;

namespace pomrt
{
namespace
{
constexpr uintmax_t kMaxPlanBytes = uintmax_t{4} << 30;

int64_t elements(std::vector<int64_t> const& dims)
{
    int64_t n = 1;
    for (int64_t const d : dims)
    {
        n *= d;
    }
    return n;
}

size_t bytesOf(DecoderTensor const& t)
{
    return static_cast<size_t>(elements(t.dims)) * (t.dtype == "float16" ? 2 : 4);
}

DecoderTensor const& find(std::vector<DecoderTensor> const& list, std::string const& name, std::string const& where)
{
    for (DecoderTensor const& t : list)
    {
        if (t.name == name)
        {
            return t;
        }
    }
    throw artifactError(where + ": no tensor '" + name + "' that the decoder entry's state pairs name");
}

bool isStateInput(DecoderSpec const& spec, std::string const& name)
{
    for (auto const& [input, output] : spec.statePairs)
    {
        if (input == name)
        {
            return true;
        }
    }
    return false;
}

bool isStateOutput(DecoderSpec const& spec, std::string const& name)
{
    for (auto const& [input, output] : spec.statePairs)
    {
        if (output == name)
        {
            return true;
        }
    }
    return false;
}

//! The one tensor of `list` that no state pair names (the latent in, the frames out).
DecoderTensor const& payload(DecoderSpec const& spec, std::vector<DecoderTensor> const& list, bool input,
    std::string const& where)
{
    DecoderTensor const* found = nullptr;
    for (DecoderTensor const& t : list)
    {
        if (!(input ? isStateInput(spec, t.name) : isStateOutput(spec, t.name)))
        {
            if (found != nullptr)
            {
                throw artifactError(where + ": more than one " + (input ? "input" : "output") + " outside the state pairs");
            }
            found = &t;
        }
    }
    if (found == nullptr)
    {
        throw artifactError(where + std::string(": no ") + (input ? "latent input" : "frames output"));
    }
    return *found;
}

DataType dataTypeOf(std::string const& dtype)
{
    return dtype == "float16" ? DataType::kHALF : DataType::kFLOAT;
}

//! The engine's IO must be the decoder entry's (names, directions, dtypes, static dims):
//! TensorRT trusts the addresses it is given, so a larger tensor would overrun our buffers.
void checkIo(ICudaEngine const& engine, DecoderGraphIo const& io, std::string const& plan)
{
    auto check = [&](DecoderTensor const& t, TensorIOMode mode) {
        char const* name = t.name.c_str();
        Dims const dims = engine.getTensorShape(name);
        bool same = engine.getTensorIOMode(name) == mode && engine.getTensorDataType(name) == dataTypeOf(t.dtype)
            && dims.nbDims == static_cast<int32_t>(t.dims.size());
        for (int32_t i = 0; same && i < dims.nbDims; ++i)
        {
            same = dims.d[i] == t.dims[static_cast<size_t>(i)];
        }
        if (!same)
        {
            throw Error(POMRT_ERR_TENSORRT, plan + ": IO tensor '" + t.name
                    + "' differs from the decoder entry's io (name, direction, dtype or shape); rebuild the engine");
        }
    };
    for (DecoderTensor const& t : io.inputs)
    {
        check(t, TensorIOMode::kINPUT);
    }
    for (DecoderTensor const& t : io.outputs)
    {
        check(t, TensorIOMode::kOUTPUT);
    }
    if (engine.getNbIOTensors() != static_cast<int32_t>(io.inputs.size() + io.outputs.size()))
    {
        throw Error(POMRT_ERR_TENSORRT, plan + ": the engine has IO tensors the decoder entry does not list");
    }
}
} // namespace

std::unique_ptr<TrtDecoder> TrtDecoder::load(Artifact const& artifact, GpuTarget const& target, int32_t slots,
    int64_t latentElems, Logger& logger, std::string& reason)
{
    Manifest const& m = artifact.manifest();
    DecoderEngineSet const set = chooseDecoderEngines(m, target.trtVersion, target.name, target.sm);
    reason = set.reason;
    if (!set.reason.empty())
    {
        return nullptr;
    }
    DecoderSpec const& spec = *m.decoder;
    for (auto const& [role, io] : spec.graphs)
    {
        for (auto const* list : {&io.inputs, &io.outputs})
        {
            for (DecoderTensor const& t : *list)
            {
                bool const border = !isStateInput(spec, t.name) && !isStateOutput(spec, t.name);
                if (border && t.dtype != "float32")
                {
                    // export/decoder.py writes fp32 borders (docs/design.md §6.2); no conversion kernels here.
                    reason = spec.files.at(role) + ": " + t.name + " is " + t.dtype
                        + " at the graph's border; the C++ runtime decodes fp32 borders only";
                    return nullptr;
                }
            }
        }
    }
    std::unique_ptr<TrtDecoder> decoder(new TrtDecoder(spec, slots));
    decoder->mRuntime.reset(createInferRuntime(logger));
    if (!decoder->mRuntime)
    {
        throw Error(POMRT_ERR_TENSORRT, "TensorRT could not create a runtime for the decoder engines");
    }
    for (auto const& [role, plan] : set.plans)
    {
        // The bytes hashed are the bytes deserialised, as for the step engine: Artifact::open
        // checked the file, but it may have been replaced since, and a plan is code run on the GPU.
        decoder->addRole(role, readVerifiedBytes(artifact.path(plan), m.files.at(plan).sha256, kMaxPlanBytes, plan),
            latentElems);
    }
    decoder->allocate();
    return decoder;
}

TrtDecoder::TrtDecoder(DecoderSpec const& spec, int32_t slots)
    : mSpec(spec)
    , mSlots(slots)
{
}

TrtDecoder::~TrtDecoder() = default;

void TrtDecoder::addRole(std::string const& role, std::vector<uint8_t> const& plan, int64_t latentElems)
{
    std::string const& where = mSpec.files.at(role);
    Role& r = mRoles[role];
    r.engine.reset(mRuntime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!r.engine)
    {
        throw Error(POMRT_ERR_TENSORRT, where + ": TensorRT could not deserialise its engine (another TensorRT "
                                                "version or GPU than its record says?)");
    }
    DecoderGraphIo const& io = mSpec.graphs.at(role);
    checkIo(*r.engine, io, where);
    DecoderTensor const& latent = payload(mSpec, io.inputs, true, where);
    DecoderTensor const& frames = payload(mSpec, io.outputs, false, where);
    r.latentName = latent.name;
    r.latentBytes = bytesOf(latent);
    r.framesName = frames.name;
    r.frames = mSpec.framesPerStep.at(role);
    // latent [1, C, h, w] or [1, C, 1, h, w]: the model's frame as it is (de-scaled inside);
    // frames [1, 3, H, W] (one frame) or [1, 3, F, H, W] with F = frames_per_step.
    std::vector<int64_t> const& f = frames.dims;
    bool const shaped = f.size() >= 4 && f[0] == 1 && f[1] == 3
        && (f.size() == 4 ? r.frames == 1 : f.size() == 5 && f[2] == r.frames);
    if (elements(latent.dims) != latentElems || !shaped)
    {
        throw artifactError(where + ": latent of " + std::to_string(elements(latent.dims))
            + " values for a model frame of " + std::to_string(latentElems)
            + ", or frames not [1, 3, (frames_per_step,) H, W]");
    }
    int32_t const h = static_cast<int32_t>(f[f.size() - 2]);
    int32_t const w = static_cast<int32_t>(f[f.size() - 1]);
    if ((mHeight != 0 && (h != mHeight || w != mWidth)))
    {
        throw artifactError(where + ": RGB frames of another size than the other decoder graph's");
    }
    mHeight = h;
    mWidth = w;
    r.context.reset(r.engine->createExecutionContext());
    if (!r.context)
    {
        throw Error(POMRT_ERR_TENSORRT, where + ": no execution context (out of device memory?)");
    }
}

int32_t TrtDecoder::framesOf(std::string const& role) const
{
    auto const it = mRoles.find(role);
    return it == mRoles.end() ? 0 : it->second.frames;
}

//! Everything once: the latent and frames buffers shared by the roles (one call at a time on
//! the runtime's stream), two cache sets per slot, a host staging buffer per slot.
void TrtDecoder::allocate()
{
    size_t latentBytes = 0;
    size_t framesBytes = 0;
    int32_t maxFrames = 0;
    for (auto& [role, r] : mRoles)
    {
        DecoderGraphIo const& io = mSpec.graphs.at(role);
        latentBytes = std::max(latentBytes, r.latentBytes);
        framesBytes = std::max(framesBytes, bytesOf(find(io.outputs, r.framesName, role)));
        maxFrames = std::max(maxFrames, r.frames);
    }
    mLatent = DeviceBuffer(latentBytes);
    mFrames = DeviceBuffer(framesBytes);
    for (auto& [role, r] : mRoles)
    {
        bool ok = r.context->setTensorAddress(r.latentName.c_str(), mLatent.get());
        ok = ok && r.context->setTensorAddress(r.framesName.c_str(), mFrames.get());
        if (!ok)
        {
            throw Error(POMRT_ERR_TENSORRT, "decoder " + role + ": cannot bind its latent or frames tensor");
        }
    }
    mCaches.resize(static_cast<size_t>(mSlots));
    if (mSpec.streaming())
    {
        // A cache's size is the `next` input's; `first` and `next` write the same tensors.
        DecoderGraphIo const& next = mSpec.graphs.at("next");
        for (auto& sets : mCaches)
        {
            for (auto& set : sets)
            {
                for (auto const& [input, output] : mSpec.statePairs)
                {
                    size_t const bytes = bytesOf(find(next.inputs, input, "decoder/next.onnx"));
                    for (auto const& [role, io] : mSpec.graphs)
                    {
                        if (bytesOf(find(io.outputs, output, mSpec.files.at(role))) != bytes)
                        {
                            throw artifactError(mSpec.files.at(role) + ": " + output + " differs from " + input);
                        }
                    }
                    set.emplace_back(bytes);
                }
            }
        }
    }
    mFront.assign(static_cast<size_t>(mSlots), 0);
    mStarted.assign(static_cast<size_t>(mSlots), false);
    mStaging.assign(static_cast<size_t>(mSlots),
        std::vector<float>(static_cast<size_t>(3) * static_cast<size_t>(maxFrames) * static_cast<size_t>(mHeight)
            * static_cast<size_t>(mWidth)));
    mStagedFrames.assign(static_cast<size_t>(mSlots), 0);
}

void TrtDecoder::reset(int32_t slot)
{
    mStarted[static_cast<size_t>(slot)] = false;
    mFront[static_cast<size_t>(slot)] = 0;
    mStagedFrames[static_cast<size_t>(slot)] = 0;
}

void TrtDecoder::enqueue(int32_t slot, float const* latent, cudaStream_t stream)
{
    size_t const s = static_cast<size_t>(slot);
    std::string const role = !mSpec.streaming() ? "decode" : (mStarted[s] ? "next" : "first");
    Role& r = mRoles.at(role);
    cudaCheck(cudaMemcpyAsync(mLatent.get(), latent, r.latentBytes, cudaMemcpyDeviceToDevice, stream),
        "decoder latent");
    bool ok = true;
    for (size_t i = 0; i < mSpec.statePairs.size() && mSpec.streaming(); ++i)
    {
        // `next` reads the caches the previous call wrote; both write the other set (ping-pong).
        std::vector<DeviceBuffer> const& read = mCaches[s][static_cast<size_t>(mFront[s])];
        std::vector<DeviceBuffer> const& write = mCaches[s][static_cast<size_t>(1 - mFront[s])];
        if (role == "next")
        {
            ok = ok && r.context->setTensorAddress(mSpec.statePairs[i].first.c_str(), read[i].get());
        }
        ok = ok && r.context->setTensorAddress(mSpec.statePairs[i].second.c_str(), write[i].get());
    }
    if (!ok || !r.context->enqueueV3(stream))
    {
        throw Error(POMRT_ERR_TENSORRT, "decoder " + role + ": enqueueV3 failed (see TensorRT's log above)");
    }
    size_t const bytes = static_cast<size_t>(3 * r.frames) * static_cast<size_t>(mHeight) * static_cast<size_t>(mWidth)
        * sizeof(float);
    cudaCheck(cudaMemcpyAsync(mStaging[s].data(), mFrames.get(), bytes, cudaMemcpyDeviceToHost, stream),
        "decoder frames download");
    mStagedFrames[s] = r.frames;
    if (mSpec.streaming())
    {
        mFront[s] = 1 - mFront[s];
        mStarted[s] = true;
    }
}

void TrtDecoder::collect(int32_t slot, std::deque<RgbFrame>& queue) const
{
    size_t const s = static_cast<size_t>(slot);
    size_t const frames = static_cast<size_t>(mStagedFrames[s]);
    size_t const plane = static_cast<size_t>(mHeight) * static_cast<size_t>(mWidth);
    for (size_t f = 0; f < frames; ++f)
    {
        // [3, F, H, W] -> frame f as [3, H, W] (with F = 1 the layout of an image's [3, H, W]).
        RgbFrame frame(3 * plane);
        for (size_t c = 0; c < 3; ++c)
        {
            std::memcpy(frame.data() + c * plane, mStaging[s].data() + (c * frames + f) * plane, plane * sizeof(float));
        }
        queue.push_back(std::move(frame));
    }
}

} // namespace pomrt
