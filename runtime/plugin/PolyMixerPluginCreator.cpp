/*
 * PolyMixerPluginCreator, attribute parsing, error reporting, and the shared library's entry
 * points.
 *
 * libpomexport_plugins.so registers nothing at load time (no REGISTER_TENSORRT_PLUGIN, no link
 * to libnvinfer). TensorRT's IPluginRegistry::loadLibrary -- what `trtexec --dynamicPlugins`,
 * the Python builder (`get_plugin_registry().load_library`) and the C++ runtime call -- looks up
 * two C symbols in the library:
 *   void setLoggerFinder(nvinfer1::ILoggerFinder*);
 *   nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);
 * (getPluginCreators is the older, deprecated name for IPluginCreator V2 creators.)
 *
 * getCreators returns exactly one creator: PolyMixer, version 1, namespace "pomexport"
 * (docs/design.md §2). loadLibrary "will fail and return nullptr if any of the plugins are already
 * registered", so a library listing one plugin twice is a library that may not load at all.
 * The plugin-flavor ONNX carries plugin_namespace="pomexport" on its PolyMixer nodes
 * (export/flavors.py), which is the namespace every TensorRT ONNX parser from 10.3 to 11 looks in
 * first; README.md "Loading" gives the parser source lines.
 */
#include "PolyMixerPlugin.h"
#include "polyMixerContract.h"

#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

namespace pomexport
{
namespace plugin
{
namespace
{
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

std::string fieldString(nvinfer1::PluginField const& field)
{
    if (field.type != nvinfer1::PluginFieldType::kCHAR || field.data == nullptr || field.length < 0)
    {
        throw std::invalid_argument(std::string("attribute '") + field.name + "' must be a string");
    }
    std::string value(static_cast<char const*>(field.data), static_cast<size_t>(field.length));
    // Serialised strings may or may not carry their NUL terminator.
    value.erase(value.find_last_not_of('\0') + 1);
    return value;
}

int32_t fieldInt(nvinfer1::PluginField const& field)
{
    if (field.data == nullptr || field.length != 1)
    {
        throw std::invalid_argument(std::string("attribute '") + field.name + "' must be one integer");
    }
    if (field.type == nvinfer1::PluginFieldType::kINT32)
    {
        return *static_cast<int32_t const*>(field.data);
    }
    if (field.type == nvinfer1::PluginFieldType::kINT64)
    {
        int64_t const value = *static_cast<int64_t const*>(field.data);
        if (value < INT32_MIN || value > INT32_MAX)
        {
            throw std::invalid_argument(std::string("attribute '") + field.name + "' is out of int32 range");
        }
        return static_cast<int32_t>(value);
    }
    throw std::invalid_argument(std::string("attribute '") + field.name + "' must be int32");
}

PolyVariant parseVariant(std::string const& name)
{
    if (name == contract::kVARIANT_MOMENTS)
    {
        return PolyVariant::kMOMENTS;
    }
    if (name == contract::kVARIANT_POWERS)
    {
        return PolyVariant::kPOWERS;
    }
    throw std::invalid_argument("unknown variant '" + name + "' (expected moments or powers)");
}

PolyGate parseGate(std::string const& name)
{
    if (name == contract::kGATE_SIGMOID)
    {
        return PolyGate::kSIGMOID;
    }
    if (name == contract::kGATE_HARDSIGMOID)
    {
        return PolyGate::kHARDSIGMOID;
    }
    throw std::invalid_argument("unknown gate '" + name + "' (expected sigmoid or hardsigmoid)");
}

} // namespace

int32_t PolyMixerAttributes::nbInputs() const noexcept
{
    return variant == PolyVariant::kPOWERS ? contract::kINPUT_COEFF + 1 : contract::kINPUT_COEFF;
}

char const* PolyMixerAttributes::variantName() const noexcept
{
    return variant == PolyVariant::kPOWERS ? contract::kVARIANT_POWERS : contract::kVARIANT_MOMENTS;
}

char const* PolyMixerAttributes::gateName() const noexcept
{
    return gate == PolyGate::kHARDSIGMOID ? contract::kGATE_HARDSIGMOID : contract::kGATE_SIGMOID;
}

void PolyMixerAttributes::validate() const
{
    if (order < contract::kMIN_ORDER || order > contract::kMAX_ORDER)
    {
        throw std::invalid_argument("order must be in 1..4, got " + std::to_string(order));
    }
    if (selHeads < 0)
    {
        throw std::invalid_argument("sel_heads must be >= 0, got " + std::to_string(selHeads));
    }
    if (selHeads > 1 && variant != PolyVariant::kPOWERS)
    {
        throw std::invalid_argument("sel_heads > 1 is only defined for the powers variant");
    }
}

std::string PolyMixerAttributes::describe() const
{
    return std::string(contract::kATTR_VARIANT) + "=" + variantName() + " " + contract::kATTR_ORDER + "="
        + std::to_string(order) + " " + contract::kATTR_GATE + "=" + gateName() + " " + contract::kATTR_SEL_HEADS
        + "=" + std::to_string(selHeads);
}

PolyMixerAttributes parseAttributes(nvinfer1::PluginFieldCollection const* fields)
{
    PolyMixerAttributes attributes;
    attributes.variant = parseVariant(contract::kDEFAULT_VARIANT);
    attributes.order = contract::kDEFAULT_ORDER;
    attributes.gate = parseGate(contract::kDEFAULT_GATE);
    attributes.selHeads = contract::kDEFAULT_SEL_HEADS;
    for (int32_t i = 0; fields != nullptr && i < fields->nbFields; ++i)
    {
        nvinfer1::PluginField const& field = fields->fields[i];
        char const* name = field.name != nullptr ? field.name : "";
        if (std::strcmp(name, contract::kATTR_VARIANT) == 0)
        {
            attributes.variant = parseVariant(fieldString(field));
        }
        else if (std::strcmp(name, contract::kATTR_ORDER) == 0)
        {
            attributes.order = fieldInt(field);
        }
        else if (std::strcmp(name, contract::kATTR_GATE) == 0)
        {
            attributes.gate = parseGate(fieldString(field));
        }
        else if (std::strcmp(name, contract::kATTR_SEL_HEADS) == 0)
        {
            attributes.selHeads = fieldInt(field);
        }
        else
        {
            throw std::invalid_argument(std::string("unknown attribute '") + name + "'");
        }
    }
    attributes.validate();
    return attributes;
}

void reportPluginError(char const* where, char const* what) noexcept
{
    try
    {
        std::string const message = std::string(contract::kPLUGIN_NAMESPACE) + "::" + contract::kPLUGIN_NAME + "::"
            + where + ": " + what;
        nvinfer1::ILoggerFinder* finder = gLoggerFinder.load();
        nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
        if (logger != nullptr)
        {
            logger->log(nvinfer1::ILogger::Severity::kERROR, message.c_str());
            return;
        }
        std::fprintf(stderr, "[E] %s\n", message.c_str());
    }
    catch (...)
    {
        // Reporting must never throw out of a noexcept method; nothing else can be done here.
    }
}

PolyMixerPluginCreator::PolyMixerPluginCreator()
{
    mFieldNames.emplace_back(contract::kATTR_VARIANT, nullptr, nvinfer1::PluginFieldType::kCHAR, 0);
    mFieldNames.emplace_back(contract::kATTR_ORDER, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldNames.emplace_back(contract::kATTR_GATE, nullptr, nvinfer1::PluginFieldType::kCHAR, 0);
    mFieldNames.emplace_back(contract::kATTR_SEL_HEADS, nullptr, nvinfer1::PluginFieldType::kINT32, 1);
    mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
    mFieldCollection.fields = mFieldNames.data();
}

nvinfer1::IPluginV3* PolyMixerPluginCreator::createPlugin(
    char const* /* name */, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase /* phase */) noexcept
{
    try
    {
        // Build and runtime phases read the same fields: getFieldsToSerialize writes the attributes.
        return new PolyMixerPlugin(parseAttributes(fc));
    }
    catch (std::exception const& e)
    {
        reportPluginError("createPlugin", e.what());
    }
    return nullptr;
}

nvinfer1::PluginFieldCollection const* PolyMixerPluginCreator::getFieldNames() noexcept
{
    return &mFieldCollection;
}

char const* PolyMixerPluginCreator::getPluginName() const noexcept
{
    return contract::kPLUGIN_NAME;
}

char const* PolyMixerPluginCreator::getPluginVersion() const noexcept
{
    return contract::kPLUGIN_VERSION;
}

char const* PolyMixerPluginCreator::getPluginNamespace() const noexcept
{
    return contract::kPLUGIN_NAMESPACE;
}

} // namespace plugin
} // namespace pomexport

#define POMEXPORT_PLUGIN_API extern "C" __attribute__((visibility("default")))

//! Entry point of IPluginRegistry::loadLibrary: TensorRT hands over a way to find its logger.
POMEXPORT_PLUGIN_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder)
{
    pomexport::plugin::gLoggerFinder.store(finder);
}

//! Entry point of IPluginRegistry::loadLibrary: the creators this library provides -- one, PolyMixer
//! v1 in the "pomexport" namespace (one (name, version, namespace) may be registered only once).
POMEXPORT_PLUGIN_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators)
{
    // Function-local statics: created on first use, after the library is fully loaded.
    static pomexport::plugin::PolyMixerPluginCreator sPolyMixerCreator;
    static nvinfer1::IPluginCreatorInterface* const sCreators[] = {&sPolyMixerCreator};
    nbCreators = static_cast<int32_t>(sizeof(sCreators) / sizeof(sCreators[0]));
    return sCreators;
}
