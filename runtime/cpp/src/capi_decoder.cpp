// The decoder stage of an artifact through the C API (pomrt.h, issue 21): what the manifest's
// checked `decoder` entry says, CPU-only.
#include <string>

#include "capi_guard.hpp"
#include "pomrt.h"
#include "pomrt/decoder_engines.hpp"
#include "pomrt/manifest.hpp"

namespace pomrt
{
namespace capi
{
namespace
{
//! Floats in one stream's cache set: the `next` inputs the state pairs name.
int64_t cacheFloats(DecoderSpec const& spec)
{
    int64_t total = 0;
    for (auto const& [input, output] : spec.statePairs)
    {
        for (DecoderTensor const& t : spec.graphs.at("next").inputs)
        {
            if (t.name == input)
            {
                int64_t n = 1;
                for (int64_t const d : t.dims)
                {
                    n *= d;
                }
                total += n;
            }
        }
    }
    return total;
}

void fillDecoderInfo(DecoderSpec const& spec, pomrt_decoder_info* info)
{
    DecoderGraphIo const& io = spec.graphs.at(spec.firstRole());
    if (io.inputs.empty() || io.outputs.empty() || io.inputs[0].dims.size() < 4 || io.outputs[0].dims.size() < 4)
    {
        throw artifactError("decoder " + spec.firstRole() + ": needs a latent input and an RGB output of rank >= 4");
    }
    std::vector<int64_t> const& latent = io.inputs[0].dims;
    std::vector<int64_t> const& rgb = io.outputs[0].dims;
    info->has_decoder = 1;
    info->streaming = spec.streaming() ? 1 : 0;
    info->latent_channels = static_cast<int32_t>(latent[1]);
    info->latent_height = static_cast<int32_t>(latent[latent.size() - 2]);
    info->latent_width = static_cast<int32_t>(latent[latent.size() - 1]);
    info->rgb_height = static_cast<int32_t>(rgb[rgb.size() - 2]);
    info->rgb_width = static_cast<int32_t>(rgb[rgb.size() - 1]);
    info->frames_first = spec.framesPerStep.at(spec.firstRole());
    info->frames_next = spec.streaming() ? spec.framesPerStep.at("next") : info->frames_first;
    info->cache_tensors = static_cast<int32_t>(spec.statePairs.size());
    info->cache_floats = spec.streaming() ? cacheFloats(spec) : 0;
    copyMessage(spec.kind, info->kind, sizeof(info->kind));
    copyMessage(spec.precision, info->precision, sizeof(info->precision));
    copyMessage(spec.sourceClass, info->source_class, sizeof(info->source_class));
}
} // namespace
} // namespace capi
} // namespace pomrt

using namespace pomrt;
using namespace pomrt::capi;

extern "C" {

POMRT_API pomrt_status pomrt_artifact_decoder(const char* artifact_dir, pomrt_decoder_info* info)
{
    return guarded([&] {
        requireNonNull(artifact_dir, "artifact_dir");
        requireNonNull(info, "info");
        if (info->struct_size != sizeof(pomrt_decoder_info))
        {
            throw argumentError("info->struct_size is " + std::to_string(info->struct_size) + ", expected "
                + std::to_string(sizeof(pomrt_decoder_info)) + " (header and library differ)");
        }
        Artifact const artifact = Artifact::open(artifact_dir);
        size_t const size = info->struct_size;
        *info = pomrt_decoder_info{};
        info->struct_size = size;
        if (artifact.manifest().decoder)
        {
            fillDecoderInfo(*artifact.manifest().decoder, info);
        }
    });
}

POMRT_API pomrt_status pomrt_artifact_decoder_engine(const char* artifact_dir, const char* role,
    const char* trt_version, const char* gpu_name, int32_t sm, char* plan, size_t plan_len)
{
    return guarded([&] {
        requireNonNull(artifact_dir, "artifact_dir");
        requireNonNull(role, "role");
        requireNonNull(trt_version, "trt_version");
        requireNonNull(gpu_name, "gpu_name");
        requireNonNull(plan, "plan");
        copyMessage(std::string(), plan, plan_len);
        Artifact const artifact = Artifact::open(artifact_dir);
        DecoderEngineChoice const choice = chooseDecoderEngine(artifact.manifest(), role, trt_version, gpu_name, sm);
        if (choice.plan.empty())
        {
            throw Error(POMRT_ERR_UNSUPPORTED, choice.reason);
        }
        if (plan_len <= choice.plan.size())
        {
            throw Error(POMRT_ERR_BUFFER_TOO_SMALL, "plan buffer of " + std::to_string(plan_len) + " bytes for '"
                + choice.plan + "'");
        }
        copyMessage(choice.plan, plan, plan_len);
    });
}

} // extern "C"
