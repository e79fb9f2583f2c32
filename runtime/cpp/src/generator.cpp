// The TensorRT frame loop behind pomrt_create (docs/design.md §3), mirroring
// pomexport/runtime/generator.py::VideoGenerator:
//   for every frame: every active slot starts from its own noise; for t in the schedule the
//   step reads the committed state and writes the scratch buffer (state_out discarded); then
//   one step at t = 0 on the clean frame writes the other ping-pong buffer, inactive rows are
//   zeroed, count += tokens_per_frame, frame_index += 1, and the buffers swap.
// With CFG the batch holds every slot twice (rows [0, S) conditional, [S, 2S) the null label).
// With decoder engines for this GPU (trt_decoder.hpp), each active slot's committed latent is
// then decoded at batch 1 and its RGB frames queue on the host until pomrt_next_rgb reads them.
#include <NvInferRuntime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "pomrt/noise_math.h"
#include "pomrt/schedule.hpp"
#include "trt_runtime.hpp"

namespace fs = std::filesystem;

namespace pomrt
{
namespace
{

int32_t selectDevice(int32_t device)
{
    cudaCheck(cudaSetDevice(device), "cudaSetDevice");
    return device;
}
} // namespace

TrtRuntime::TrtRuntime(fs::path const& dir, pomrt_options const& options)
    : mDevice(selectDevice(options.device))
    , mArtifact(Artifact::open(dir))
    , mConfig(mArtifact.manifest().config)
    , mSlots(options.slots)
    , mRows(options.cfg_scale != 1.0F ? 2 * options.slots : options.slots)
    , mGuided(options.cfg_scale != 1.0F)
    , mCfgScale(options.cfg_scale)
    , mDType(mArtifact.manifest().input("x_t").dtype == "float16" ? ModelDType::kHALF : ModelDType::kFLOAT)
    , mFrameElems(mConfig.frameElements())
    , mTimes(timeSchedule(options.steps, options.shift))
    , mSlotState(static_cast<size_t>(options.slots > 0 ? options.slots : 0))
    , mLogger(options.verbose)
{
    Manifest const& m = mArtifact.manifest();
    if (mConfig.textDim != 0)
    {
        throw Error(POMRT_ERR_UNSUPPORTED, "pomrt drives class-conditional models only (this one takes text)");
    }
    if (mSlots < 1 || mRows < m.batchMin || mRows > m.batchMax)
    {
        throw argumentError(std::to_string(mSlots) + " slots need " + std::to_string(mRows)
            + " batch rows (2 per slot with CFG); the engine's profile allows [" + std::to_string(m.batchMin) + ", "
            + std::to_string(m.batchMax) + "]");
    }
    mEngine = loadEngine(mArtifact, options, mLogger);
    mContext.reset(mEngine->engine->createExecutionContext());
    if (!mContext)
    {
        throw Error(POMRT_ERR_TENSORRT, "TensorRT could not create an execution context (out of device memory?)");
    }
    allocate();
    bindStatic();
    mDecoder = TrtDecoder::load(mArtifact, gpuTarget(options.device), mSlots, mFrameElems, mLogger, mNoDecoder);
    mRgb.resize(static_cast<size_t>(mSlots));
    if (!mDecoder && m.decoder)
    {
        std::fprintf(stderr, "[pomrt] the decoder stage is not run (frames stay latents): %s\n", mNoDecoder.c_str());
    }
}

TrtRuntime::~TrtRuntime()
{
    cudaStreamSynchronize(mStream.get()); // buffers must not be freed under running kernels
    mContext.reset();
}

void TrtRuntime::allocate()
{
    size_t const modelBytes = mDType == ModelDType::kHALF ? 2 : 4;
    size_t const rows = static_cast<size_t>(mRows);
    size_t const frame = static_cast<size_t>(mFrameElems);
    size_t const state = static_cast<size_t>(mConfig.depth) * rows * static_cast<size_t>(mConfig.stateWidth()) * 4;
    mX = DeviceBuffer(static_cast<size_t>(mSlots) * frame * 4);
    mXt = DeviceBuffer(rows * frame * modelBytes);
    mV = DeviceBuffer(rows * frame * modelBytes);
    mT = DeviceBuffer(rows * 4);
    mLabel = DeviceBuffer(rows * 8);
    mFrameIndex = DeviceBuffer(rows * 8);
    mCount = DeviceBuffer(rows * 4);
    mActive = DeviceBuffer(rows * 4);
    mKeys = DeviceBuffer(static_cast<size_t>(mSlots) * 8);
    mScratch = DeviceBuffer(state);
    mState[0] = DeviceBuffer(state);
    mState[1] = DeviceBuffer(state);
    mHostFrames.assign(static_cast<size_t>(mSlots) * frame, 0.0F);
}

//! Shapes and addresses that never change; only state/state_out move (ping-pong).
void TrtRuntime::bindStatic()
{
    for (TensorSpec const& spec : mArtifact.manifest().inputs)
    {
        nvinfer1::Dims dims{};
        dims.nbDims = static_cast<int32_t>(spec.dims.size());
        for (int32_t i = 0; i < dims.nbDims; ++i)
        {
            int64_t const d = spec.dims[static_cast<size_t>(i)];
            dims.d[i] = d < 0 ? mRows : d;
        }
        if (!mContext->setInputShape(spec.name.c_str(), dims))
        {
            throw Error(POMRT_ERR_TENSORRT, "input shape of '" + spec.name + "' is outside the engine's profile");
        }
    }
    std::pair<char const*, void*> const bindings[] = {{"x_t", mXt.get()}, {"t", mT.get()}, {"label", mLabel.get()},
        {"frame_index", mFrameIndex.get()}, {"count", mCount.get()}, {"v", mV.get()}};
    for (auto const& [name, address] : bindings)
    {
        if (!mContext->setTensorAddress(name, address))
        {
            throw Error(POMRT_ERR_TENSORRT, std::string("cannot bind tensor '") + name + "'");
        }
    }
}

void TrtRuntime::uploadRow(DeviceBuffer const& buffer, int32_t row, void const* value, size_t size)
{
    cudaCheck(cudaMemcpyAsync(buffer.get<char>() + static_cast<size_t>(row) * size, value, size,
                  cudaMemcpyHostToDevice, mStream.get()),
        "cudaMemcpyAsync");
}

void TrtRuntime::resetStream(int32_t slot, uint64_t seed, int32_t label)
{
    if (slot < 0 || slot >= mSlots)
    {
        throw stateError("slot " + std::to_string(slot) + " out of range [0, " + std::to_string(mSlots) + ")");
    }
    if (label > mConfig.numClasses)
    {
        throw argumentError("label " + std::to_string(label) + " out of range [0, " + std::to_string(mConfig.numClasses)
            + "] (" + std::to_string(mConfig.numClasses) + " = unconditional)");
    }
    bool const start = label >= 0;
    size_t const stateRow = static_cast<size_t>(mConfig.stateWidth()) * 4;
    float const active = start ? 1.0F : 0.0F;
    int64_t const zero = 0;
    float const zeroF = 0.0F;
    for (int32_t r = 0; r < (mGuided ? 2 : 1); ++r)
    {
        int32_t const row = slot + r * mSlots;
        int64_t const rowLabel = r == 0 ? label : mConfig.numClasses; // CFG rows use the null label
        for (auto const& buffer : mState)
        {
            cudaCheck(cudaMemset2DAsync(buffer.get<char>() + static_cast<size_t>(row) * stateRow,
                          static_cast<size_t>(mRows) * stateRow, 0, stateRow, static_cast<size_t>(mConfig.depth),
                          mStream.get()),
                "cudaMemset2DAsync");
        }
        uploadRow(mCount, row, &zeroF, 4);
        uploadRow(mFrameIndex, row, &zero, 8);
        uploadRow(mActive, row, &active, 4);
        if (start)
        {
            uploadRow(mLabel, row, &rowLabel, 8);
        }
    }
    mStream.synchronize(); // the host values above live on this stack frame
    mSlotState[static_cast<size_t>(slot)] = Slot{start, false, seed, start ? label : 0, 0};
    mRgb[static_cast<size_t>(slot)].clear();
    if (mDecoder)
    {
        mDecoder->reset(slot); // a restarted stream runs `first` again, on fresh caches
    }
}

Slot& TrtRuntime::started(int32_t slot)
{
    if (slot < 0 || slot >= mSlots || !mSlotState[static_cast<size_t>(slot)].active)
    {
        throw stateError("slot " + std::to_string(slot) + " has no stream: pomrt_reset_stream it with a label first");
    }
    return mSlotState[static_cast<size_t>(slot)];
}

//! One batch frame for every active slot, once every active slot has read the last one.
void TrtRuntime::advanceBatch()
{
    for (size_t i = 0; i < mSlotState.size(); ++i)
    {
        if (mSlotState[i].active && mSlotState[i].unread)
        {
            throw stateError("slot " + std::to_string(i)
                + " has an unread frame: read every active slot once per frame before the batch advances");
        }
    }
    generateFrame();
}

void TrtRuntime::nextFrame(int32_t slot, float* out, size_t bytes)
{
    Slot& s = started(slot);
    size_t const frameBytes = static_cast<size_t>(mFrameElems) * sizeof(float);
    if (bytes < frameBytes)
    {
        throw Error(POMRT_ERR_BUFFER_TOO_SMALL,
            "output buffer of " + std::to_string(bytes) + " bytes; a frame needs " + std::to_string(frameBytes));
    }
    if (!s.unread)
    {
        advanceBatch();
    }
    std::memcpy(out, mHostFrames.data() + static_cast<size_t>(slot) * static_cast<size_t>(mFrameElems), frameBytes);
    s.unread = false;
}

void TrtRuntime::step(float t, float* stateOut)
{
    cudaStream_t const stream = mStream.get();
    cudaCheck(launchPrepareInput(mX.get<float>(), mXt.get(), mSlots, mFrameElems, mGuided, mDType, stream), "prepare");
    cudaCheck(launchFill(mT.get<float>(), mRows, t, stream), "fill t");
    bool ok = mContext->setTensorAddress("state", mState[mFront].get());
    ok = ok && mContext->setTensorAddress("state_out", stateOut);
    if (!ok || !mContext->enqueueV3(stream))
    {
        throw Error(POMRT_ERR_TENSORRT, "enqueueV3 failed (see TensorRT's log above)");
    }
}

void TrtRuntime::generateFrame()
{
    cudaStream_t const stream = mStream.get();
    std::vector<uint64_t> keys(static_cast<size_t>(mSlots));
    for (size_t i = 0; i < keys.size(); ++i)
    {
        Slot const& s = mSlotState[i];
        keys[i] = pomrtNoiseKey(s.seed, /*stream=*/i, s.frame);
    }
    cudaCheck(cudaMemcpyAsync(mKeys.get(), keys.data(), keys.size() * 8, cudaMemcpyHostToDevice, stream), "keys");
    cudaCheck(launchNoise(mX.get<float>(), mKeys.get<uint64_t>(), mActive.get<float>(), mSlots, mFrameElems, stream),
        "noise");
    for (size_t i = 0; i + 1 < mTimes.size(); ++i)
    {
        step(mTimes[i], mScratch.get<float>()); // denoising: state read, state_out discarded
        cudaCheck(launchEuler(mX.get<float>(), mV.get(), mSlots, mFrameElems, mGuided, mCfgScale,
                      mTimes[i + 1] - mTimes[i], mDType, stream),
            "euler");
    }
    commit();
    cudaCheck(cudaMemcpyAsync(mHostFrames.data(), mX.get(), mHostFrames.size() * sizeof(float),
                  cudaMemcpyDeviceToHost, stream),
        "frame download");
    decode();
    mStream.synchronize();
    for (size_t i = 0; i < mSlotState.size(); ++i)
    {
        Slot& s = mSlotState[i];
        s.unread = s.active;
        s.frame += s.active ? 1 : 0;
        mRgb[i].clear(); // RGB of a frame whose latent was read instead
        if (mDecoder && s.active)
        {
            mDecoder->collect(static_cast<int32_t>(i), mRgb[i]);
        }
    }
}

std::unique_ptr<Runtime> Runtime::create(fs::path const& artifactDir, pomrt_options const& options)
{
    return std::make_unique<TrtRuntime>(artifactDir, options);
}

} // namespace pomrt
