// The runtime half of the C API: create / reset / next frame / destroy around pomrt::Runtime.
#include <memory>
#include <string>

#include "capi_guard.hpp"
#include "pomrt.h"
#include "pomrt/runtime.hpp"

namespace pomrt
{
namespace capi
{
void fillInfo(Manifest const& m, pomrt_model_info* info);
void checkInfoStruct(pomrt_model_info const* info);
} // namespace capi

#if !POMRT_WITH_TENSORRT
constexpr char const* kNoTensorRT
    = "libpomrt was built without TensorRT (POMRT_WITH_TENSORRT=OFF): only the CPU entry points work; "
      "rebuild with TensorRT and CUDA to generate frames";

std::unique_ptr<Runtime> Runtime::create(std::filesystem::path const&, pomrt_options const&)
{
    throw Error(POMRT_ERR_UNSUPPORTED, kNoTensorRT);
}
#endif

namespace capi
{
//! Calls that need a runtime say first that a CPU-only build has none (the only handle a
//! caller can hold there is NULL, which would otherwise read as a bad argument).
inline void requireTensorRT()
{
#if !POMRT_WITH_TENSORRT
    throw Error(POMRT_ERR_UNSUPPORTED, kNoTensorRT);
#endif
}
} // namespace capi
} // namespace pomrt

struct pomrt_runtime
{
    std::unique_ptr<pomrt::Runtime> impl;
};

using namespace pomrt;
using namespace pomrt::capi;

namespace
{
pomrt::Runtime& live(pomrt_runtime const* rt)
{
    requireNonNull(rt, "runtime handle");
    requireNonNull(rt->impl.get(), "runtime handle (destroyed?)");
    return *rt->impl;
}
} // namespace

extern "C" {

POMRT_API void pomrt_default_options(pomrt_options* options)
{
    if (options == nullptr)
    {
        return;
    }
    *options = pomrt_options{};
    options->struct_size = sizeof(pomrt_options);
    options->slots = 1;
    options->steps = 20;
    options->cfg_scale = 2.0F;
    options->shift = 1.0F;
    options->device = 0;
    options->prefer_plugin = 1;
    options->build_if_missing = 1;
}

POMRT_API pomrt_status pomrt_create(const char* artifact_dir, const pomrt_options* options, pomrt_runtime** out)
{
    return guarded([&] {
        requireNonNull(out, "out");
        *out = nullptr;
        requireNonNull(artifact_dir, "artifact_dir");
        pomrt_options defaults;
        pomrt_default_options(&defaults);
        if (options != nullptr && options->struct_size != sizeof(pomrt_options))
        {
            throw argumentError("options->struct_size mismatch: call pomrt_default_options first");
        }
        auto handle = std::make_unique<pomrt_runtime>();
        handle->impl = Runtime::create(artifact_dir, options != nullptr ? *options : defaults);
        *out = handle.release();
    });
}

POMRT_API pomrt_status pomrt_info(const pomrt_runtime* rt, pomrt_model_info* info)
{
    return guarded([&] {
        pomrt::Runtime const& runtime = live(rt);
        checkInfoStruct(info);
        fillInfo(runtime.manifest(), info);
        info->slots = runtime.slots();
        info->rows = runtime.rows();
    });
}

POMRT_API pomrt_status pomrt_reset_stream(pomrt_runtime* rt, int32_t slot, uint64_t seed, int32_t label)
{
    return guarded([&] { live(rt).resetStream(slot, seed, label); });
}

POMRT_API pomrt_status pomrt_next_frame(pomrt_runtime* rt, int32_t slot, float* out, size_t size)
{
    return guarded([&] {
        requireNonNull(out, "out");
        live(rt).nextFrame(slot, out, size);
    });
}

POMRT_API pomrt_status pomrt_decode_info(const pomrt_runtime* rt, pomrt_rgb_info* info)
{
    return guarded([&] {
        requireTensorRT();
        pomrt::Runtime const& runtime = live(rt);
        requireNonNull(info, "info");
        if (info->struct_size != sizeof(pomrt_rgb_info))
        {
            throw argumentError("info->struct_size is " + std::to_string(info->struct_size) + ", expected "
                + std::to_string(sizeof(pomrt_rgb_info)) + " (header and library differ)");
        }
        RgbFrames const rgb = runtime.rgbFrames();
        *info = pomrt_rgb_info{};
        info->struct_size = sizeof(pomrt_rgb_info);
        info->decodes = rgb.decodes ? 1 : 0;
        info->channels = rgb.decodes ? 3 : 0;
        info->height = rgb.height;
        info->width = rgb.width;
        info->frames_first = rgb.framesFirst;
        info->frames_next = rgb.framesNext;
        copyMessage(rgb.reason, info->reason, sizeof(info->reason));
    });
}

POMRT_API pomrt_status pomrt_next_rgb(pomrt_runtime* rt, int32_t slot, float* out, size_t size, int32_t* frames_written)
{
    if (frames_written != nullptr)
    {
        *frames_written = 0;
    }
    return guarded([&] {
        requireTensorRT();
        requireNonNull(out, "out");
        requireNonNull(frames_written, "frames_written");
        *frames_written = static_cast<int32_t>(live(rt).nextRgb(slot, out, size));
    });
}

POMRT_API void pomrt_destroy(pomrt_runtime* rt)
{
    // Destructors free CUDA memory and TensorRT objects; none of them may escape into C.
    guarded([&] { delete rt; });
}

} // extern "C"
