// The CPU-only half of the C API (pomrt.h): errors, version, artifact checks, schedule, noise.
#include <cstring>
#include <string>

#include "capi_guard.hpp"
#include "pomrt.h"
#include "pomrt/manifest.hpp"
#include "pomrt/noise_math.h"
#include "pomrt/schedule.hpp"

namespace pomrt
{
namespace capi
{
namespace
{
thread_local std::string tLastError;
}

void setLastError(std::string message)
{
    tLastError = std::move(message);
}

//! Fill the manifest part of a pomrt_model_info (shared with pomrt_info).
void fillInfo(Manifest const& m, pomrt_model_info* info)
{
    ModelConfig const& c = m.config;
    info->in_channels = c.inChannels;
    info->height = c.inputSize;
    info->width = c.inputSize;
    info->depth = c.depth;
    info->state_width = c.stateWidth();
    info->tokens_per_frame = c.tokensPerFrame();
    info->num_classes = c.numClasses;
    info->batch_min = m.batchMin;
    info->batch_opt = m.batchOpt;
    info->batch_max = m.batchMax;
    info->video = c.video ? 1 : 0;
    copyMessage(m.precision, info->precision, sizeof(info->precision));
    copyMessage(m.variant, info->variant, sizeof(info->variant));
    copyMessage(m.modelName, info->model_name, sizeof(info->model_name));
}

void checkInfoStruct(pomrt_model_info const* info)
{
    requireNonNull(info, "info");
    if (info->struct_size != sizeof(pomrt_model_info))
    {
        throw argumentError("info->struct_size is " + std::to_string(info->struct_size) + ", expected "
            + std::to_string(sizeof(pomrt_model_info)) + " (header and library differ)");
    }
}

} // namespace capi
} // namespace pomrt

using namespace pomrt;
using namespace pomrt::capi;

extern "C" {

POMRT_API const char* pomrt_last_error(void)
{
    return tLastError.c_str();
}

POMRT_API const char* pomrt_version(void)
{
    return "pomrt 0.1.0";
}

POMRT_API int32_t pomrt_has_tensorrt(void)
{
#if POMRT_WITH_TENSORRT
    return 1;
#else
    return 0;
#endif
}

POMRT_API pomrt_status pomrt_verify_artifact(const char* artifact_dir, char* err_buf, size_t err_len)
{
    pomrt_status const status = guarded([&] {
        requireNonNull(artifact_dir, "artifact_dir");
        Artifact::open(artifact_dir);
    });
    copyMessage(tLastError, err_buf, err_len);
    return status;
}

POMRT_API pomrt_status pomrt_artifact_info(const char* artifact_dir, pomrt_model_info* info)
{
    return guarded([&] {
        requireNonNull(artifact_dir, "artifact_dir");
        checkInfoStruct(info);
        fillInfo(Artifact::open(artifact_dir).manifest(), info);
        info->slots = 0;
        info->rows = 0;
    });
}

POMRT_API pomrt_status pomrt_schedule(int32_t steps, float shift, float* out)
{
    return guarded([&] {
        requireNonNull(out, "out");
        std::vector<float> const times = timeSchedule(steps, shift);
        std::memcpy(out, times.data(), times.size() * sizeof(float));
    });
}

POMRT_API pomrt_status pomrt_noise(uint64_t seed, uint64_t stream, uint64_t frame, size_t count, float* out)
{
    return guarded([&] {
        requireNonNull(out, "out");
        uint64_t const key = pomrtNoiseKey(seed, stream, frame);
        for (size_t i = 0; i < count; ++i)
        {
            out[i] = pomrtNoiseAt(key, i);
        }
    });
}

} // extern "C"
