// The frame-by-frame runtime (docs/design.md §3) behind pomrt_create: an interface free of
// TensorRT and CUDA types, so the C API compiles the same in CPU-only builds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "pomrt.h"
#include "pomrt/manifest.hpp"

namespace pomrt
{

//! Whether a runtime decodes its latents (the artifact's decoder stage on TensorRT, issue 21)
//! and the RGB frames it then returns.
struct RgbFrames
{
    bool decodes{false};
    int32_t height{0};
    int32_t width{0};
    int32_t framesFirst{0}; //!< RGB frames of a stream's first latent frame
    int32_t framesNext{0};  //!< RGB frames of every later latent frame
    std::string reason;     //!< decodes == false: why (no decoder stage, no engine for this GPU...)
};

class Runtime
{
public:
    virtual ~Runtime() = default;

    //! Verify the artifact, load or build the engine, allocate buffers. Needs a TensorRT
    //! build (POMRT_WITH_TENSORRT); otherwise throws Error(POMRT_ERR_UNSUPPORTED).
    static std::unique_ptr<Runtime> create(std::filesystem::path const& artifactDir, pomrt_options const& options);

    virtual Manifest const& manifest() const = 0;
    virtual int32_t slots() const = 0;
    //! Batch rows of the engine: slots, or 2 x slots with classifier-free guidance.
    virtual int32_t rows() const = 0;

    //! Start a stream in `slot` (frame 0, empty state); label < 0 frees the slot.
    virtual void resetStream(int32_t slot, uint64_t seed, int32_t label) = 0;

    //! Copy the next frame of `slot` (C_in x H x W fp32) into `out` (`bytes` long).
    virtual void nextFrame(int32_t slot, float* out, size_t bytes) = 0;

    virtual RgbFrames rgbFrames() const = 0;

    //! Copy the queued RGB frames of `slot` that fit into `out` (3 x H x W fp32 each, at least
    //! one must fit), advancing the batch first when the slot has none; returns how many.
    //! Throws Error(UNSUPPORTED) when the runtime does not decode.
    virtual size_t nextRgb(int32_t slot, float* out, size_t bytes) = 0;
};

} // namespace pomrt
