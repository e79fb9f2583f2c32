// The decoder stage's engine choice (include/pomrt/decoder_engines.hpp): names as the Python
// builder and the bundle's build.sh write them, records as they keep them (the manifest's
// decoder entry, or device.json's, which mergeDeviceFiles adds to DecoderSpec::engines).
#include "pomrt/decoder_engines.hpp"

#include <algorithm>
#include <cctype>

#include "pomrt/error.hpp"

namespace pomrt
{

std::string gpuSlug(std::string const& name)
{
    std::string gpu;
    for (char const c : name)
    {
        unsigned char const u = static_cast<unsigned char>(c);
        if (std::isalnum(u))
        {
            gpu += static_cast<char>(std::tolower(u));
        }
        else if (!gpu.empty() && gpu.back() != '-')
        {
            gpu += '-';
        }
    }
    while (!gpu.empty() && gpu.back() == '-')
    {
        gpu.pop_back();
    }
    return gpu;
}

std::string trtRelease(std::string const& version)
{
    std::string parts[3];
    size_t n = 0;
    size_t start = 0;
    while (n < 3 && start <= version.size())
    {
        size_t const dot = std::min(version.find('.', start), version.size());
        parts[n++] = version.substr(start, dot - start);
        start = dot + 1;
    }
    auto const digits = [](std::string const& p) {
        return !p.empty() && std::all_of(p.begin(), p.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    };
    if (n < 2 || !digits(parts[0]) || !digits(parts[1]) || (n == 3 && !digits(parts[2])))
    {
        return std::string();
    }
    return parts[0] + "." + parts[1] + "." + (n == 3 ? parts[2] : "0");
}

std::string decoderPlanName(std::string const& role, std::string const& gpuName, int32_t sm, std::string const& trtVersion)
{
    return "decoder/" + role + "-" + gpuSlug(gpuName) + "-sm" + std::to_string(sm) + "-trt" + trtRelease(trtVersion)
        + ".plan";
}

DecoderEngineChoice chooseDecoderEngine(
    Manifest const& m, std::string const& role, std::string const& trtVersion, std::string const& gpuName, int32_t sm)
{
    if (!m.decoder)
    {
        return {std::string(), "the artifact has no decoder stage"};
    }
    DecoderSpec const& spec = *m.decoder;
    if (spec.files.count(role) == 0)
    {
        throw argumentError("decoder role '" + role + "': a " + spec.kind + " decoder has no such graph");
    }
    if (trtRelease(trtVersion).empty() || gpuSlug(gpuName).empty() || sm < 10)
    {
        throw argumentError("target TensorRT '" + trtVersion + "', GPU '" + gpuName + "', SM " + std::to_string(sm)
            + ": needs a version major.minor[.patch], a GPU name with letters or digits and an SM >= 10");
    }
    std::string const plan = decoderPlanName(role, gpuName, sm, trtVersion);
    std::string const& graph = spec.files.at(role);
    auto const record = spec.engines.find(plan);
    if (m.files.count(plan) == 0)
    {
        return {std::string(), plan + ": not in the artifact (build MODEL --decoder DIR --backend trt on this GPU, or "
                                      "run the bundle's build.sh on the device)"};
    }
    if (record == spec.engines.end())
    {
        return {std::string(), plan + ": listed without an engine record in the decoder entry or device.json, so not "
                                      "known to be built from " + graph};
    }
    DecoderEngineRecord const& r = record->second;
    if (m.files.count(graph) == 0 || r.onnxSha256 != m.files.at(graph).sha256)
    {
        return {std::string(), plan + ": built from an earlier " + graph + " (rebuild the decoder engines)"};
    }
    bool const sameTarget = trtRelease(r.trtVersion) == trtRelease(trtVersion) && gpuSlug(r.gpuName) == gpuSlug(gpuName)
        && r.sm == sm && r.emptyProfile;
    if (!sameTarget)
    {
        return {std::string(), plan + ": its record names another target (TensorRT " + r.trtVersion + ", " + r.gpuName
                                      + ", SM " + std::to_string(r.sm) + ") or an optimisation profile"};
    }
    return {plan, std::string()};
}

DecoderEngineSet chooseDecoderEngines(
    Manifest const& m, std::string const& trtVersion, std::string const& gpuName, int32_t sm)
{
    DecoderEngineSet set;
    if (!m.decoder)
    {
        set.reason = "the artifact has no decoder stage";
        return set;
    }
    for (std::string const& role : decoderRoles(m.decoder->kind))
    {
        DecoderEngineChoice const choice = chooseDecoderEngine(m, role, trtVersion, gpuName, sm);
        if (choice.plan.empty())
        {
            set.plans.clear();
            set.reason = choice.reason;
            return set;
        }
        set.plans[role] = choice.plan;
    }
    return set;
}

} // namespace pomrt
