// Engine loading and building for pomrt (TensorRT 10.x and 11.x, strongly typed only: no
// BuilderFlag::kFP16/kINT8, no calibrators — precision is baked into the ONNX,
// docs/design.md §4).
#include "engine.hpp"

#include <NvInferRuntime.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "device.hpp"
#include "pomrt/decoder_engines.hpp"
#include "pomrt/error.hpp"
#include "pomrt/paths.hpp"
#include "pomrt/pinned.hpp"
#include "pomrt/sha256.hpp"
#include "pomrt/signature.hpp"
// The op contract the plugin library is built from: src/plugin beside src/cpp, in the repository
// (runtime/plugin) and in deploy bundles alike.
#include "../../plugin/polyMixerContract.h"

namespace fs = std::filesystem;
using namespace nvinfer1;

namespace pomrt
{

void Logger::log(Severity severity, AsciiChar const* message) noexcept
{
    Severity const limit = mVerbose >= 2 ? Severity::kVERBOSE : (mVerbose == 1 ? Severity::kINFO : Severity::kWARNING);
    if (severity <= limit)
    {
        std::fprintf(stderr, "[pomrt/TensorRT] %s\n", message);
    }
}

namespace
{
//! Whether PolyMixer v1 is registered in namespace "pomexport". Scans getAllCreators rather than
//! asking getCreator, which logs an API-usage error for every miss (the normal first load).
bool polyMixerRegistered(IPluginRegistry const& registry)
{
    using namespace pomexport::contract;
    int32_t count = 0;
    IPluginCreatorInterface* const* creators = registry.getAllCreators(&count);
    for (int32_t i = 0; creators != nullptr && i < count; ++i)
    {
        // Our creator is an IPluginCreatorV3One; other kinds cannot be it.
        if (creators[i] == nullptr || std::strcmp(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
        {
            continue;
        }
        auto const* creator = static_cast<IPluginCreatorV3One const*>(creators[i]);
        if (std::strcmp(creator->getPluginName(), kPLUGIN_NAME) == 0
            && std::strcmp(creator->getPluginVersion(), kPLUGIN_VERSION) == 0
            && std::strcmp(creator->getPluginNamespace(), kPLUGIN_NAMESPACE) == 0)
        {
            return true;
        }
    }
    return false;
}
} // namespace

PluginLoader tensorrtPluginLoader()
{
    using namespace pomexport::contract;
    PluginLoader loader;
    loader.load = [](std::string const& path) {
        IPluginRegistry* registry = getPluginRegistry();
        if (registry == nullptr)
        {
            throw Error(POMRT_ERR_TENSORRT, "TensorRT returned no plugin registry");
        }
        if (polyMixerRegistered(*registry))
        {
            // Registered by a loader pomrt does not know about (Python's tensorrt, another library):
            // loadLibrary would return nullptr, so that registration is the one to use.
            std::fprintf(stderr,
                "[pomrt] %s v%s (namespace %s) is already registered in this process by another loader: "
                "using it instead of loading %s\n",
                kPLUGIN_NAME, kPLUGIN_VERSION, kPLUGIN_NAMESPACE, path.c_str());
            return PluginHandle{nullptr, false};
        }
        IPluginRegistry::PluginLibraryHandle handle = registry->loadLibrary(path.c_str());
        if (handle == nullptr)
        {
            throw Error(POMRT_ERR_PLUGIN,
                path + ": TensorRT's IPluginRegistry::loadLibrary returned nullptr: the library could not be "
                    "opened (a missing dependency?), exports neither getCreators nor getPluginCreators, or one of "
                    "its creators is already registered in this process (see TensorRT's log above)");
        }
        if (!polyMixerRegistered(*registry))
        {
            registry->deregisterLibrary(handle);
            throw Error(POMRT_ERR_PLUGIN,
                path + ": loaded, but it registers no " + kPLUGIN_NAME + " v" + kPLUGIN_VERSION + " creator in namespace \""
                    + kPLUGIN_NAMESPACE + "\" (a library built from other sources?)");
        }
        return PluginHandle{handle, true};
    };
    loader.unload = [](void* handle) { getPluginRegistry()->deregisterLibrary(handle); };
    return loader;
}

GpuTarget gpuTarget(int32_t device)
{
    cudaDeviceProp prop{};
    cudaCheck(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return GpuTarget{prop.name, prop.major * 10 + prop.minor,
        std::to_string(getInferLibMajorVersion()) + "." + std::to_string(getInferLibMinorVersion()) + "."
            + std::to_string(getInferLibPatchVersion())};
}

std::string enginePlanName(int32_t device)
{
    GpuTarget const target = gpuTarget(device);
    return "engines/" + gpuSlug(target.name) + "-sm" + std::to_string(target.sm) + "-trt" + target.trtVersion + ".plan";
}

namespace
{
constexpr char const* kTimingCacheName = "timing.cache"; // export/artifact.py: TIMING_CACHE

//! (path, sha256) of the plugin library: the option's, or the one the manifest lists under plugins/.
std::pair<std::string, std::string> pluginSource(Artifact const& artifact, pomrt_options const& options)
{
    if (options.plugin_path != nullptr)
    {
        if (options.plugin_sha256 == nullptr)
        {
            throw Error(POMRT_ERR_PLUGIN,
                std::string(options.plugin_path) + ": plugin_path needs plugin_sha256 (libraries are verified before loading)");
        }
        return {options.plugin_path, options.plugin_sha256};
    }
    for (auto const& [name, entry] : artifact.manifest().files)
    {
        bool const isLibrary = name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0;
        if (name.rfind("plugins/", 0) == 0 && isLibrary)
        {
            return {artifact.path(name).string(), entry.sha256};
        }
    }
    return {};
}

std::vector<char> readBytes(fs::path const& path)
{
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof())
    {
        throw artifactError(path.string() + ": unreadable");
    }
    return bytes;
}

Dims profileDims(TensorSpec const& spec, int32_t batch)
{
    Dims dims{};
    dims.nbDims = static_cast<int32_t>(spec.dims.size());
    for (int32_t i = 0; i < dims.nbDims; ++i)
    {
        dims.d[i] = spec.dims[static_cast<size_t>(i)] < 0 ? batch : spec.dims[static_cast<size_t>(i)];
    }
    return dims;
}

//! One optimisation profile: every input's batch axis over the manifest's [min, opt, max].
void addProfile(IBuilder& builder, IBuilderConfig& config, INetworkDefinition& network, Manifest const& m)
{
    IOptimizationProfile* profile = builder.createOptimizationProfile();
    for (int32_t i = 0; i < network.getNbInputs(); ++i)
    {
        char const* name = network.getInput(i)->getName();
        TensorSpec const& spec = m.input(name);
        bool ok = profile->setDimensions(name, OptProfileSelector::kMIN, profileDims(spec, m.batchMin));
        ok = ok && profile->setDimensions(name, OptProfileSelector::kOPT, profileDims(spec, m.batchOpt));
        ok = ok && profile->setDimensions(name, OptProfileSelector::kMAX, profileDims(spec, m.batchMax));
        if (!ok)
        {
            throw Error(POMRT_ERR_TENSORRT, std::string("optimisation profile rejected for input ") + name);
        }
    }
    if (config.addOptimizationProfile(profile) < 0)
    {
        throw Error(POMRT_ERR_TENSORRT, "invalid optimisation profile (batch range of the manifest)");
    }
}

//! The largest ONNX file read into memory (protobuf's own limit); its external data files are
//! bounded by the manifest's sizes.
constexpr uintmax_t kMaxOnnxBytes = uintmax_t{2} << 30;
constexpr uintmax_t kMaxDataBytes = uintmax_t{1} << 40;

std::unique_ptr<INetworkDefinition> parseOnnx(IBuilder& builder, Artifact const& artifact, std::string const& name,
    Logger& logger, std::unique_ptr<nvonnxparser::IParser>& parser)
{
    NetworkDefinitionCreationFlags flags = 0;
#if NV_TENSORRT_MAJOR < 11
    // TensorRT 10: ask for a strongly typed network. TensorRT 11 networks are always strongly
    // typed and the flag is deprecated (ignored), so it is not set there.
    flags |= 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
#endif
    std::unique_ptr<INetworkDefinition> network(builder.createNetworkV2(flags));
    parser.reset(nvonnxparser::createParser(*network, logger));
    if (!network || !parser)
    {
        throw Error(POMRT_ERR_TENSORRT, "TensorRT could not create a network or an ONNX parser");
    }
    // The bytes that were verified are the bytes parsed (issue 22): the ONNX is read once and
    // hashed; without external data the parser gets that buffer, with external data a private
    // copy of it and of its data files, each written from bytes hashed as they were read.
    Manifest const& m = artifact.manifest();
    std::vector<uint8_t> const model = readVerifiedBytes(artifact.path(name), m.files.at(name).sha256, kMaxOnnxBytes, name);
    auto const external = m.externalData.find(name);
    bool parsed = false;
    if (external == m.externalData.end() || external->second.empty())
    {
        parsed = parser->parse(model.data(), model.size());
    }
    else
    {
        PrivateDirectory copy;
        fs::path const copied = copy.add(name, model);
        for (std::string const& member : external->second)
        {
            copy.add(member, readVerifiedBytes(artifact.path(member), m.files.at(member).sha256, kMaxDataBytes, member));
        }
        parsed = parser->parseFromFile(copied.c_str(), static_cast<int32_t>(ILogger::Severity::kWARNING));
    }
    if (!parsed)
    {
        std::string message = name + ": TensorRT's ONNX parser failed";
        for (int32_t i = 0; i < parser->getNbErrors(); ++i)
        {
            message += std::string(i == 0 ? ": " : "; ") + parser->getError(i)->desc();
        }
        throw Error(POMRT_ERR_TENSORRT, message);
    }
    return network;
}

//! A plan and the timing cache its build produced (both cached into the artifact).
struct Built
{
    std::vector<char> plan;
    std::vector<char> timingCache;
};

std::vector<char> bytesOf(IHostMemory const* memory)
{
    auto const* data = memory != nullptr ? static_cast<char const*>(memory->data()) : nullptr;
    return data != nullptr ? std::vector<char>(data, data + memory->size()) : std::vector<char>();
}

//! The artifact's timing.cache when it lists one, else an empty cache; a cache from another
//! device or TensorRT version is replaced by an empty one (setTimingCache refuses it).
std::unique_ptr<ITimingCache> timingCache(Artifact const& artifact, IBuilderConfig& config)
{
    std::vector<char> const blob
        = artifact.lists(kTimingCacheName) ? readBytes(artifact.path(kTimingCacheName)) : std::vector<char>();
    std::unique_ptr<ITimingCache> cache(config.createTimingCache(blob.data(), blob.size()));
    if (cache && !config.setTimingCache(*cache, /*ignoreMismatch=*/false))
    {
        cache.reset(config.createTimingCache(nullptr, 0));
        if (cache)
        {
            config.setTimingCache(*cache, false);
        }
    }
    return cache;
}

//! Build a serialised plan from the artifact's ONNX flavor.
Built buildPlan(Artifact const& artifact, std::string const& flavor, pomrt_options const& options, Logger& logger)
{
    std::string const onnxName = artifact.manifest().flavors.at(flavor);
    std::unique_ptr<IBuilder> builder(createInferBuilder(logger));
    if (!builder)
    {
        throw Error(POMRT_ERR_TENSORRT, "TensorRT could not create a builder (no GPU?)");
    }
    std::unique_ptr<nvonnxparser::IParser> parser;
    std::unique_ptr<INetworkDefinition> network = parseOnnx(*builder, artifact, onnxName, logger, parser);
    std::unique_ptr<IBuilderConfig> config(builder->createBuilderConfig());
    // TF32 is on by default: it would run the ONNX's fp32 GEMMs (fp32 artifacts, the fp32 islands
    // of fp16 ones) with 10-bit mantissas. Every type comes from the graph (docs/design.md §4),
    // so off.
    config->clearFlag(BuilderFlag::kTF32);
    addProfile(*builder, *config, *network, artifact.manifest());
    if (options.workspace_bytes > 0)
    {
        config->setMemoryPoolLimit(MemoryPoolType::kWORKSPACE, options.workspace_bytes);
    }
    std::unique_ptr<ITimingCache> cache = timingCache(artifact, *config);
    std::unique_ptr<IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
    if (!plan || plan->size() == 0)
    {
        throw Error(POMRT_ERR_TENSORRT, onnxName + ": engine build failed (see TensorRT's log above)");
    }
    std::unique_ptr<IHostMemory> timing(cache ? cache->serialize() : nullptr);
    return Built{bytesOf(plan.get()), bytesOf(timing.get())};
}

//! Write a file into the artifact and record it in device.json (manifest.json is never
//! written: docs/design.md §6.1); a read-only artifact only loses the cache (the engine in
//! memory is still used). With trusted keys nothing is cached: the runtime holds no key to
//! sign device.json with, and an unsigned one would be refused by the next load.
void cacheFile(Artifact const& artifact, std::string const& name, std::vector<char> const& content)
{
    if (content.empty())
    {
        return;
    }
    if (!trustedKeysFromEnv().empty())
    {
        std::fprintf(stderr,
            "[pomrt] %s not cached: trusted keys are configured and the runtime cannot sign %s (build the engine "
            "with the bundle's build.sh and POMEXPORT_DEVICE_KEY)\n",
            name.c_str(), kDeviceName);
        return;
    }
    try
    {
        fs::create_directories((artifact.root() / name).parent_path());
        std::string const bytes(content.begin(), content.end());
        atomicWrite(artifact.root() / name, bytes);
        addDeviceFile(artifact.root(), name, FileEntry{sha256Bytes(bytes.data(), bytes.size()), bytes.size()});
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "[pomrt] warning: %s not cached (%s)\n", name.c_str(), e.what());
    }
}

DataType dataTypeOf(std::string const& dtype)
{
    if (dtype == "float32")
    {
        return DataType::kFLOAT;
    }
    if (dtype == "float16")
    {
        return DataType::kHALF;
    }
    if (dtype == "int64")
    {
        return DataType::kINT64;
    }
    throw artifactError(std::string(kManifestName) + ": unsupported IO dtype '" + dtype + "'");
}

void checkIo(ICudaEngine const& engine, Manifest const& m)
{
    auto check = [&](TensorSpec const& spec, TensorIOMode mode) {
        if (engine.getTensorIOMode(spec.name.c_str()) != mode || engine.getTensorDataType(spec.name.c_str()) != dataTypeOf(spec.dtype))
        {
            throw Error(POMRT_ERR_TENSORRT, "engine IO tensor '" + spec.name + "' differs from the manifest's contract ("
                + spec.dtype + "); rebuild the engine");
        }
        // Static axes too: the buffers are sized from the (graph-checked) config, so an engine
        // built from another graph must not get them (-1: the batch, dynamic in both).
        Dims const dims = engine.getTensorShape(spec.name.c_str());
        bool same = dims.nbDims == static_cast<int32_t>(spec.dims.size());
        for (int32_t i = 0; same && i < dims.nbDims; ++i)
        {
            same = spec.dims[i] < 0 || dims.d[i] == spec.dims[i];
        }
        if (!same)
        {
            throw Error(POMRT_ERR_TENSORRT, "engine IO tensor '" + spec.name
                + "' has another shape than the manifest's contract; rebuild the engine");
        }
    };
    for (auto const& spec : m.inputs)
    {
        check(spec, TensorIOMode::kINPUT);
    }
    for (auto const& spec : m.outputs)
    {
        check(spec, TensorIOMode::kOUTPUT);
    }
    if (engine.getNbIOTensors() != static_cast<int32_t>(m.inputs.size() + m.outputs.size()))
    {
        throw Error(POMRT_ERR_TENSORRT, "engine has IO tensors the manifest's contract does not list");
    }
}
} // namespace

std::unique_ptr<EngineBundle> loadEngine(Artifact const& artifact, pomrt_options const& options, Logger& logger)
{
    auto bundle = std::make_unique<EngineBundle>();
    auto const [pluginPath, pluginSha] = pluginSource(artifact, options);
    if (!pluginPath.empty())
    {
        // Shared with every other runtime and pomrt_plugin_load caller of the process: TensorRT
        // refuses to load a library whose creators are already registered.
        bundle->plugin = leasePlugin(pluginPath, pluginSha, tensorrtPluginLoader());
    }
    Manifest const& m = artifact.manifest();
    bool const usePlugin = bundle->plugin != nullptr && options.prefer_plugin != 0 && m.flavors.count("plugin") != 0;
    std::string const flavor = usePlugin ? "plugin" : "portable";
    bundle->planName = options.engine_path != nullptr ? std::string(options.engine_path) : enginePlanName(options.device);
    std::vector<char> plan;
    bool const stale = m.staleEngine(bundle->planName);
    if (stale)
    {
        std::fprintf(stderr, "[pomrt] %s was built from an earlier ONNX: rebuilding\n", bundle->planName.c_str());
    }
    if (artifact.lists(bundle->planName) && !stale)
    {
        // Hash the very bytes handed to TensorRT: Artifact::open checked the file, but it may
        // have been replaced since, and a plan is code run on the GPU.
        plan = readBytes(artifact.path(bundle->planName));
        std::string const& want = artifact.manifest().files.at(bundle->planName).sha256;
        if (sha256Bytes(plan.data(), plan.size()) != want)
        {
            throw artifactError(bundle->planName + ": sha256 does not match " + kManifestName
                + " (the file changed after the artifact was opened); refusing to deserialise it");
        }
    }
    else if (options.build_if_missing != 0 && options.engine_path == nullptr)
    {
        if (m.flavors.count(flavor) == 0)
        {
            throw artifactError(std::string(kManifestName) + ": no '" + flavor + "' ONNX flavor to build an engine from");
        }
        std::fprintf(stderr, "[pomrt] building %s from the %s ONNX (first run; cached afterwards)\n",
            bundle->planName.c_str(), flavor.c_str());
        Built built = buildPlan(artifact, flavor, options, logger);
        cacheFile(artifact, bundle->planName, built.plan);
        cacheFile(artifact, kTimingCacheName, built.timingCache);
        plan = std::move(built.plan);
    }
    else
    {
        throw artifactError(bundle->planName
            + (stale ? ": built from an earlier ONNX" : ": no such engine in the artifact")
            + " (and building is disabled)");
    }
    bundle->runtime.reset(createInferRuntime(logger));
    if (bundle->runtime)
    {
        bundle->engine.reset(bundle->runtime->deserializeCudaEngine(plan.data(), plan.size()));
    }
    if (!bundle->engine)
    {
        throw Error(POMRT_ERR_TENSORRT, bundle->planName
                + ": TensorRT could not deserialise the engine (another TensorRT version or GPU, or a plugin missing)");
    }
    checkIo(*bundle->engine, m);
    return bundle;
}

} // namespace pomrt
