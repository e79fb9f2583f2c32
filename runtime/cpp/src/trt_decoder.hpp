// The artifact's latent decoder stage on TensorRT (issue 21; docs/design.md §6.2), driven by
// the frame loop (generator.cpp): after each committed frame every active slot's latent is
// decoded at batch 1, so slots start, stop and restart independently.
#pragma once

#include <NvInferRuntime.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "device.hpp"
#include "engine.hpp"
#include "pomrt/manifest.hpp"

namespace pomrt
{

//! One RGB frame, 3 x H x W fp32 (nominally [-1, 1]).
using RgbFrame = std::vector<float>;

class TrtDecoder
{
public:
    //! The decoder engines of a verified artifact for `target`, or nullptr with `reason` set
    //! (no decoder stage, no engine for this GPU/TensorRT, borders other than fp32): the
    //! runtime then returns latents only, as before. Throws when chosen engines are unusable
    //! (hash, deserialisation, IO other than the decoder entry's, a latent that is not the
    //! model's frame): those are broken artifacts, not missing engines.
    static std::unique_ptr<TrtDecoder> load(Artifact const& artifact, GpuTarget const& target, int32_t slots,
        int64_t latentElems, Logger& logger, std::string& reason);

    ~TrtDecoder();
    TrtDecoder(TrtDecoder const&) = delete;
    TrtDecoder& operator=(TrtDecoder const&) = delete;

    int32_t height() const
    {
        return mHeight;
    }

    int32_t width() const
    {
        return mWidth;
    }

    int32_t framesOf(std::string const& role) const;

    //! A new stream in `slot`: its next latent frame runs `first` (image decoders: no-op).
    void reset(int32_t slot);

    //! Enqueue the decode of `slot`'s latent (fp32 on the device) on `stream`; its RGB frames
    //! land in a host staging buffer of the slot. Call collect after the stream synchronised.
    void enqueue(int32_t slot, float const* latent, cudaStream_t stream);

    //! Append the frames of `slot`'s last enqueue to `queue`, in time order.
    void collect(int32_t slot, std::deque<RgbFrame>& queue) const;

private:
    struct Role
    {
        std::unique_ptr<nvinfer1::ICudaEngine> engine;
        std::unique_ptr<nvinfer1::IExecutionContext> context; // after engine: destroyed first
        std::string latentName; //!< the one input no state pair names
        std::string framesName; //!< the one output no state pair names
        int32_t frames{1};      //!< RGB frames per call (frames_per_step)
        size_t latentBytes{0};  //!< what each call copies in (fixed: static shapes)
    };

    TrtDecoder(DecoderSpec const& spec, int32_t slots);
    void addRole(std::string const& role, std::vector<uint8_t> const& plan, int64_t latentElems);
    void allocate();

    DecoderSpec mSpec;
    int32_t mSlots;
    int32_t mHeight{0};
    int32_t mWidth{0};
    std::unique_ptr<nvinfer1::IRuntime> mRuntime; // before the engines: destroyed after them
    std::map<std::string, Role> mRoles;
    DeviceBuffer mLatent; //!< the latent input of every role (batch 1, static shape)
    DeviceBuffer mFrames; //!< the RGB output of every role, sized for the largest
    //! Per slot, two cache sets (ping-pong, like the mixer state), one buffer per state pair.
    std::vector<std::array<std::vector<DeviceBuffer>, 2>> mCaches;
    std::vector<int32_t> mFront;
    std::vector<bool> mStarted;
    std::vector<std::vector<float>> mStaging; //!< per slot: [3, F, H, W] of its last call
    std::vector<int32_t> mStagedFrames;
};

} // namespace pomrt
