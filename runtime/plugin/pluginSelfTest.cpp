/*
 * Host-only self test of libpomexport_plugins.so: loads it the way IPluginRegistry::loadLibrary
 * does (dlopen + getCreators), then drives the creator and the plugin's build/runtime interfaces
 * with hand-made tensor descriptions. No GPU and no libnvinfer are needed: nothing here launches
 * a kernel (enqueue is only called with shapes it must reject before touching CUDA).
 *
 *   pluginSelfTest path/to/libpomexport_plugins.so     exit status 0 = every check passed
 *
 * scripts/check_trt_headers.sh builds and runs it against each TensorRT header version.
 */
#include "NvInferRuntime.h"
#include "polyMixerContract.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace nvinfer1;
namespace contract = pomexport::contract;

namespace
{
int32_t gFailures = 0;

void check(bool ok, char const* what)
{
    std::printf("%s %s\n", ok ? "[ok]  " : "[FAIL]", what);
    gFailures += ok ? 0 : 1;
}

struct Fields
{
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};

    Fields(char const* variant, int32_t const* order, char const* gate, int32_t const* selHeads)
    {
        fields.emplace_back(
            contract::kATTR_VARIANT, variant, PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(variant)));
        fields.emplace_back(contract::kATTR_ORDER, order, PluginFieldType::kINT32, 1);
        fields.emplace_back(
            contract::kATTR_GATE, gate, PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(gate)));
        fields.emplace_back(contract::kATTR_SEL_HEADS, selHeads, PluginFieldType::kINT32, 1);
        collection.nbFields = static_cast<int32_t>(fields.size());
        collection.fields = fields.data();
    }
};

Dims dims(std::vector<int64_t> const& values)
{
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i)
    {
        d.d[i] = values[i];
    }
    return d;
}

DynamicPluginTensorDesc desc(std::vector<int64_t> const& shape, DataType type)
{
    DynamicPluginTensorDesc t{};
    t.desc.dims = dims(shape);
    t.desc.type = type;
    t.desc.format = TensorFormat::kLINEAR;
    t.min = t.opt = t.max = t.desc.dims;
    return t;
}

//! powers, order 3, sel_heads 4: h, g, state, count, coeff, y, state_out.
std::vector<DynamicPluginTensorDesc> powersIO(DataType act, int64_t b, int64_t n, int64_t c)
{
    return {desc({b, n, c}, act), desc({b, n, 4}, act), desc({b, c}, DataType::kFLOAT), desc({b}, DataType::kFLOAT),
        desc({c, 3}, DataType::kFLOAT), desc({b, n, c}, act), desc({b, c}, DataType::kFLOAT)};
}

void checkBuild(IPluginV3OneBuild* build)
{
    check(build->getNbOutputs() == 2, "two outputs");
    DataType const in[5] = {DataType::kHALF, DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT};
    DataType out[2] = {DataType::kINT8, DataType::kINT8};
    check(build->getOutputDataTypes(out, 2, in, 5) == 0 && out[0] == DataType::kHALF && out[1] == DataType::kFLOAT,
        "output types: y follows h (fp16), state_out fp32");

    auto io = powersIO(DataType::kHALF, 2, 64, 32);
    bool allSupported = true;
    for (int32_t pos = 0; pos < 7; ++pos)
    {
        allSupported = allSupported && build->supportsFormatCombination(pos, io.data(), 5, 2);
    }
    check(allSupported, "fp16 h/g/y with fp32 state/count/coeff/state_out is supported");
    io[1].desc.type = DataType::kFLOAT;
    check(!build->supportsFormatCombination(1, io.data(), 5, 2), "g must follow h's type");
    io = powersIO(DataType::kHALF, 2, 64, 32);
    io[2].desc.type = DataType::kHALF;
    check(!build->supportsFormatCombination(2, io.data(), 5, 2), "state must be fp32");
    io = powersIO(DataType::kINT8, 2, 64, 32);
    check(!build->supportsFormatCombination(0, io.data(), 5, 2), "int8 h is rejected");
    io = powersIO(DataType::kFLOAT, 2, 64, 32);
    io[0].desc.format = TensorFormat::kCHW32;
    check(!build->supportsFormatCombination(0, io.data(), 5, 2), "non-linear formats are rejected");

    io = powersIO(DataType::kFLOAT, -1, -1, 32);
    check(build->configurePlugin(io.data(), 5, io.data() + 5, 2) == 0, "configurePlugin accepts dynamic B and N");
    io = powersIO(DataType::kFLOAT, 2, 64, 32);
    io[4] = desc({32, 2}, DataType::kFLOAT);
    std::printf("       (an error message for the next check is expected)\n");
    check(build->configurePlugin(io.data(), 5, io.data() + 5, 2) != 0, "configurePlugin rejects coeff [C, 2] for order 3");

    io = powersIO(DataType::kFLOAT, 8, 4096, 1152);
    size_t const expected = size_t{8} * 128 * 1152 * sizeof(float);
    check(build->getWorkspaceSize(io.data(), 5, io.data() + 5, 2) == expected, "workspace: B * 128 chunks * C * 4 bytes");
}

void checkRuntime(IPluginCreatorV3One* creator, IPluginV3* plugin)
{
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    auto* build = static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    check(runtime != nullptr, "runtime capability");
    PluginFieldCollection const* serial = runtime->getFieldsToSerialize();
    std::unique_ptr<IPluginV3> restored{creator->createPlugin("restored", serial, TensorRTPhase::kRUNTIME)};
    auto* restoredBuild = restored ? static_cast<IPluginV3OneBuild*>(
                              restored->getCapabilityInterface(PluginCapabilityType::kBUILD))
                                   : nullptr;
    check(restoredBuild != nullptr
            && std::string(restoredBuild->getMetadataString()) == build->getMetadataString(),
        "serialised fields recreate the same plugin");
    std::printf("       metadata: %s\n", build->getMetadataString());

    std::unique_ptr<IPluginV3> attached{runtime->attachToContext(nullptr)};
    check(attached != nullptr, "attachToContext clones");

    auto io = powersIO(DataType::kFLOAT, 2, 8, 30); // C = 30 is not divisible by sel_heads = 4
    PluginTensorDesc in[5];
    PluginTensorDesc out[2];
    for (int32_t i = 0; i < 5; ++i)
    {
        in[i] = io[i].desc;
    }
    out[0] = io[5].desc;
    out[1] = io[6].desc;
    void const* inputs[5] = {};
    void* outputs[2] = {};
    std::printf("       (error messages for the next two checks are expected)\n");
    check(runtime->onShapeChange(in, 5, out, 2) != 0, "onShapeChange rejects C % sel_heads != 0");
    check(runtime->enqueue(in, out, inputs, outputs, nullptr, nullptr) != 0, "enqueue returns non-zero, no throw");
}

void checkBadAttributes(IPluginCreatorV3One* creator)
{
    int32_t const order = 3;
    int32_t const badOrder = 7;
    int32_t const heads = 0;
    std::printf("       (error messages for the next three checks are expected)\n");
    Fields badVariant("cubic", &order, "sigmoid", &heads);
    check(creator->createPlugin("x", &badVariant.collection, TensorRTPhase::kBUILD) == nullptr, "unknown variant");
    Fields badGate("moments", &order, "relu", &heads);
    check(creator->createPlugin("x", &badGate.collection, TensorRTPhase::kBUILD) == nullptr, "unknown gate");
    Fields orderFive("moments", &badOrder, "sigmoid", &heads);
    check(creator->createPlugin("x", &orderFive.collection, TensorRTPhase::kBUILD) == nullptr, "order outside 1..4");
}

IPluginCreatorV3One* asCreatorV3One(IPluginCreatorInterface* creator)
{
    bool const isV3One = creator != nullptr && std::string(creator->getInterfaceInfo().kind) == "PLUGIN CREATOR_V3ONE";
    return isV3One ? static_cast<IPluginCreatorV3One*>(creator) : nullptr;
}

char const* pluginNamespaceOf(IPluginV3* plugin)
{
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    return core != nullptr ? core->getPluginNamespace() : "(no core capability)";
}

//! Every creator once: TensorRT's loadLibrary fails (returns nullptr) when a (name, version,
//! namespace) is already registered, so one listed twice would make the library unloadable. Prints
//! "creator: <name> <version> <namespace>" per creator (tests/runtime/test_plugin_compile.py reads it).
void checkCreatorsUnique(IPluginCreatorInterface* const* creators, int32_t nbCreators)
{
    std::set<std::tuple<std::string, std::string, std::string>> seen;
    for (int32_t i = 0; i < nbCreators; ++i)
    {
        auto* creator = asCreatorV3One(creators[i]);
        check(creator != nullptr, "creator is an IPluginCreatorV3One");
        if (creator == nullptr)
        {
            continue;
        }
        std::printf("creator: %s %s %s\n", creator->getPluginName(), creator->getPluginVersion(),
            creator->getPluginNamespace());
        bool const added
            = seen.emplace(creator->getPluginName(), creator->getPluginVersion(), creator->getPluginNamespace()).second;
        check(added, "no two creators with one (name, version, namespace)");
    }
}

//! Plugins (and their clones) report the creator's namespace, so a serialised engine finds the
//! same creator again when it is deserialised.
void checkPluginNamespace(IPluginCreatorV3One* creator)
{
    int32_t const order = 2;
    int32_t const heads = 0;
    Fields fields(contract::kVARIANT_MOMENTS, &order, contract::kGATE_SIGMOID, &heads);
    std::unique_ptr<IPluginV3> plugin{creator->createPlugin("mixer", &fields.collection, TensorRTPhase::kBUILD)};
    std::unique_ptr<IPluginV3> clone{plugin ? plugin->clone() : nullptr};
    check(plugin != nullptr && clone != nullptr
            && std::string(pluginNamespaceOf(plugin.get())) == contract::kPLUGIN_NAMESPACE
            && std::string(pluginNamespaceOf(clone.get())) == contract::kPLUGIN_NAMESPACE,
        "plugins (and clones) report namespace \"pomexport\"");
}

} // namespace

int main(int argc, char** argv)
{
    std::setvbuf(stdout, nullptr, _IONBF, 0); // keep our lines in order with the plugin's stderr
    if (argc != 2)
    {
        std::fprintf(stderr, "usage: %s libpomexport_plugins.so\n", argv[0]);
        return 2;
    }
    void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr)
    {
        std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
        return 1;
    }
    using GetCreators = IPluginCreatorInterface* const* (*) (int32_t&);
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(library, "getCreators"));
    check(getCreators != nullptr && dlsym(library, "setLoggerFinder") != nullptr, "entry points exported");
    if (getCreators == nullptr)
    {
        return 1;
    }
    int32_t nbCreators = 0;
    IPluginCreatorInterface* const* creators = getCreators(nbCreators);
    checkCreatorsUnique(creators, nbCreators);
    check(nbCreators == 1, "one creator (PolyMixer v1, namespace \"pomexport\")");
    auto* creator = nbCreators == 1 ? asCreatorV3One(creators[0]) : nullptr;
    if (creator == nullptr)
    {
        return 1;
    }
    check(std::string(creator->getPluginName()) == contract::kPLUGIN_NAME
            && std::string(creator->getPluginVersion()) == contract::kPLUGIN_VERSION
            && std::string(creator->getPluginNamespace()) == contract::kPLUGIN_NAMESPACE,
        "creator name / version / namespace");
    check(creator->getFieldNames()->nbFields == 4, "four attributes");
    checkPluginNamespace(creator);

    int32_t const order = 3;
    int32_t const heads = 4;
    Fields fields(contract::kVARIANT_POWERS, &order, contract::kGATE_HARDSIGMOID, &heads);
    std::unique_ptr<IPluginV3> plugin{creator->createPlugin("mixer", &fields.collection, TensorRTPhase::kBUILD)};
    check(plugin != nullptr, "createPlugin(powers, order 3, hardsigmoid, sel_heads 4)");
    if (plugin == nullptr)
    {
        return 1;
    }
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    check(core != nullptr && std::string(core->getPluginName()) == contract::kPLUGIN_NAME, "core capability");
    checkBuild(static_cast<IPluginV3OneBuild*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD)));
    checkRuntime(creator, plugin.get());
    checkBadAttributes(creator);

    std::printf("%s: %d check(s) failed\n", gFailures == 0 ? "PASSED" : "FAILED", gFailures);
    return gFailures == 0 ? 0 : 1;
}
