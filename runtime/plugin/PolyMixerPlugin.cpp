/*
 * PolyMixerPlugin: the IPluginV3 object (build and runtime capabilities).
 *
 * Every noexcept method catches everything and reports it through reportPluginError; methods
 * that return a status return non-zero (enqueue included) instead of letting an exception out.
 */
#include "PolyMixerPlugin.h"
#include "polyMixerContract.h"

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
using nvinfer1::DataType;
using nvinfer1::TensorFormat;

constexpr int32_t kNB_OUTPUTS = 2;
constexpr int32_t kSTATUS_OK = 0;
constexpr int32_t kSTATUS_ERROR = 1;

bool isActivationType(DataType type)
{
    return type == DataType::kFLOAT || type == DataType::kHALF;
}

//! Throws unless `dims` has rank `rank` and dimension `axis` equals `expected` (unknown, -1,
//! dimensions pass: configurePlugin sees wildcards).
void expectDim(nvinfer1::Dims const& dims, int32_t rank, int32_t axis, int64_t expected, char const* what)
{
    if (dims.nbDims != rank)
    {
        throw std::invalid_argument(std::string(what) + ": expected rank " + std::to_string(rank));
    }
    int64_t const actual = dims.d[axis];
    if (actual >= 0 && expected >= 0 && actual != expected)
    {
        throw std::invalid_argument(std::string(what) + ": dimension " + std::to_string(axis) + " is "
            + std::to_string(actual) + ", expected " + std::to_string(expected));
    }
}

} // namespace

PolyMixerPlugin::PolyMixerPlugin(PolyMixerAttributes const& attributes)
    : mAttributes(attributes)
{
    mAttributes.validate();
    initSerialFields();
}

PolyMixerPlugin::PolyMixerPlugin(PolyMixerPlugin const& other)
    : nvinfer1::IPluginV3(other)
    , nvinfer1::IPluginV3OneCore(other)
    , nvinfer1::IPluginV3OneBuild(other)
    , nvinfer1::IPluginV3OneRuntime(other)
    , mAttributes(other.mAttributes)
{
    // The field collection points into this object's own members, so it is rebuilt, not copied.
    initSerialFields();
}

void PolyMixerPlugin::initSerialFields()
{
    mDescription = mAttributes.describe();
    char const* variant = mAttributes.variantName();
    char const* gate = mAttributes.gateName();
    mSerialFields.clear();
    mSerialFields.emplace_back(contract::kATTR_VARIANT, variant, nvinfer1::PluginFieldType::kCHAR,
        static_cast<int32_t>(std::strlen(variant)));
    mSerialFields.emplace_back(contract::kATTR_ORDER, &mAttributes.order, nvinfer1::PluginFieldType::kINT32, 1);
    mSerialFields.emplace_back(
        contract::kATTR_GATE, gate, nvinfer1::PluginFieldType::kCHAR, static_cast<int32_t>(std::strlen(gate)));
    mSerialFields.emplace_back(contract::kATTR_SEL_HEADS, &mAttributes.selHeads, nvinfer1::PluginFieldType::kINT32, 1);
    mSerialCollection.nbFields = static_cast<int32_t>(mSerialFields.size());
    mSerialCollection.fields = mSerialFields.data();
}

nvinfer1::IPluginCapability* PolyMixerPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept
{
    try
    {
        switch (type)
        {
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
    }
    catch (std::exception const& e)
    {
        reportPluginError("getCapabilityInterface", e.what());
    }
    return nullptr;
}

nvinfer1::IPluginV3* PolyMixerPlugin::clone() noexcept
{
    try
    {
        return new PolyMixerPlugin(*this);
    }
    catch (std::exception const& e)
    {
        reportPluginError("clone", e.what());
    }
    return nullptr;
}

char const* PolyMixerPlugin::getPluginName() const noexcept
{
    return contract::kPLUGIN_NAME;
}

char const* PolyMixerPlugin::getPluginVersion() const noexcept
{
    return contract::kPLUGIN_VERSION;
}

char const* PolyMixerPlugin::getPluginNamespace() const noexcept
{
    return contract::kPLUGIN_NAMESPACE;
}

void PolyMixerPlugin::checkShapes(nvinfer1::Dims const* inputDims, int32_t nbInputs) const
{
    if (nbInputs != mAttributes.nbInputs())
    {
        throw std::invalid_argument("expected " + std::to_string(mAttributes.nbInputs()) + " inputs for variant "
            + mAttributes.variantName() + ", got " + std::to_string(nbInputs));
    }
    nvinfer1::Dims const& h = inputDims[contract::kINPUT_H];
    expectDim(h, 3, 2, -1, "h [B, N, C]");
    int64_t const batch = h.d[0];
    int64_t const tokens = h.d[1];
    int64_t const channels = h.d[2];
    int64_t const gateWidth = mAttributes.selHeads > 1 ? mAttributes.selHeads : channels;
    expectDim(inputDims[contract::kINPUT_G], 3, 0, batch, "g [B, N, C|sel_heads]");
    expectDim(inputDims[contract::kINPUT_G], 3, 1, tokens, "g [B, N, C|sel_heads]");
    expectDim(inputDims[contract::kINPUT_G], 3, 2, gateWidth, "g [B, N, C|sel_heads]");
    expectDim(inputDims[contract::kINPUT_STATE], 2, 0, batch, "state [B, C]");
    expectDim(inputDims[contract::kINPUT_STATE], 2, 1, channels, "state [B, C]");
    expectDim(inputDims[contract::kINPUT_COUNT], 1, 0, batch, "count [B]");
    if (mAttributes.variant == PolyVariant::kPOWERS)
    {
        expectDim(inputDims[contract::kINPUT_COEFF], 2, 0, channels, "coeff [C, order]");
        expectDim(inputDims[contract::kINPUT_COEFF], 2, 1, mAttributes.order, "coeff [C, order]");
    }
    if (channels > 0 && mAttributes.variant == PolyVariant::kMOMENTS && channels % mAttributes.order != 0)
    {
        throw std::invalid_argument("moments: C must be divisible by order");
    }
    if (channels > 0 && mAttributes.selHeads > 1 && channels % mAttributes.selHeads != 0)
    {
        throw std::invalid_argument("C must be divisible by sel_heads");
    }
}

int32_t PolyMixerPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    try
    {
        if (nbOutputs != kNB_OUTPUTS || nbInputs > contract::kINPUT_COEFF + 1)
        {
            throw std::invalid_argument("unexpected number of inputs or outputs");
        }
        nvinfer1::Dims dims[contract::kINPUT_COEFF + 1];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].desc.dims;
        }
        checkShapes(dims, nbInputs);
        return kSTATUS_OK;
    }
    catch (std::exception const& e)
    {
        reportPluginError("configurePlugin", e.what());
    }
    return kSTATUS_ERROR;
}

int32_t PolyMixerPlugin::getOutputDataTypes(
    DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept
{
    try
    {
        if (nbOutputs != kNB_OUTPUTS || nbInputs < 1 || !isActivationType(inputTypes[contract::kINPUT_H]))
        {
            throw std::invalid_argument("h must be fp32 or fp16 and the plugin has 2 outputs");
        }
        outputTypes[contract::kOUTPUT_Y] = inputTypes[contract::kINPUT_H];
        outputTypes[contract::kOUTPUT_STATE] = DataType::kFLOAT; // the state is fp32 whatever h is
        return kSTATUS_OK;
    }
    catch (std::exception const& e)
    {
        reportPluginError("getOutputDataTypes", e.what());
    }
    return kSTATUS_ERROR;
}

int32_t PolyMixerPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs,
    nvinfer1::DimsExprs const* /* shapeInputs */, int32_t /* nbShapeInputs */, nvinfer1::DimsExprs* outputs,
    int32_t nbOutputs, nvinfer1::IExprBuilder& /* exprBuilder */) noexcept
{
    try
    {
        if (nbOutputs != kNB_OUTPUTS || nbInputs != mAttributes.nbInputs())
        {
            throw std::invalid_argument("unexpected number of inputs or outputs");
        }
        // y has h's (symbolic) shape, state_out has state's: no new expressions are needed.
        outputs[contract::kOUTPUT_Y] = inputs[contract::kINPUT_H];
        outputs[contract::kOUTPUT_STATE] = inputs[contract::kINPUT_STATE];
        return kSTATUS_OK;
    }
    catch (std::exception const& e)
    {
        reportPluginError("getOutputShapes", e.what());
    }
    return kSTATUS_ERROR;
}

bool PolyMixerPlugin::supportsFormatCombination(
    int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept
{
    try
    {
        if (pos < 0 || pos >= nbInputs + nbOutputs || nbInputs != mAttributes.nbInputs())
        {
            return false;
        }
        nvinfer1::PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR)
        {
            return false;
        }
        DataType const hType = inOut[contract::kINPUT_H].desc.type;
        bool const isActivation = pos == contract::kINPUT_H || pos == contract::kINPUT_G
            || pos == nbInputs + contract::kOUTPUT_Y;
        if (pos == contract::kINPUT_H)
        {
            return isActivationType(desc.type);
        }
        // g and y follow h's type; state, count, coeff and state_out are always fp32.
        return isActivation ? desc.type == hType : desc.type == DataType::kFLOAT;
    }
    catch (std::exception const& e)
    {
        reportPluginError("supportsFormatCombination", e.what());
    }
    return false;
}

int32_t PolyMixerPlugin::getNbOutputs() const noexcept
{
    return kNB_OUTPUTS;
}

size_t PolyMixerPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
    nvinfer1::DynamicPluginTensorDesc const* /* outputs */, int32_t /* nbOutputs */) const noexcept
{
    try
    {
        if (nbInputs < 1 || inputs[contract::kINPUT_H].max.nbDims != 3)
        {
            throw std::invalid_argument("h must be [B, N, C]");
        }
        nvinfer1::Dims const& most = inputs[contract::kINPUT_H].max;
        return polyMixerWorkspaceSize(most.d[0], most.d[1], most.d[2]);
    }
    catch (std::exception const& e)
    {
        reportPluginError("getWorkspaceSize", e.what());
    }
    return 0;
}

char const* PolyMixerPlugin::getTimingCacheID() noexcept
{
    return mDescription.c_str();
}

char const* PolyMixerPlugin::getMetadataString() noexcept
{
    return mDescription.c_str();
}

int32_t PolyMixerPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
    nvinfer1::PluginTensorDesc const* /* out */, int32_t nbOutputs) noexcept
{
    try
    {
        if (nbOutputs != kNB_OUTPUTS || nbInputs > contract::kINPUT_COEFF + 1)
        {
            throw std::invalid_argument("unexpected number of inputs or outputs");
        }
        nvinfer1::Dims dims[contract::kINPUT_COEFF + 1];
        for (int32_t i = 0; i < nbInputs; ++i)
        {
            dims[i] = in[i].dims;
        }
        checkShapes(dims, nbInputs);
        return kSTATUS_OK;
    }
    catch (std::exception const& e)
    {
        reportPluginError("onShapeChange", e.what());
    }
    return kSTATUS_ERROR;
}

int32_t PolyMixerPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc,
    nvinfer1::PluginTensorDesc const* /* outputDesc */, void const* const* inputs, void* const* outputs,
    void* workspace, cudaStream_t stream) noexcept
{
    try
    {
        nvinfer1::Dims const& h = inputDesc[contract::kINPUT_H].dims;
        PolyMixerParams params;
        params.h = inputs[contract::kINPUT_H];
        params.g = inputs[contract::kINPUT_G];
        params.state = static_cast<float const*>(inputs[contract::kINPUT_STATE]);
        params.count = static_cast<float const*>(inputs[contract::kINPUT_COUNT]);
        params.coeff = mAttributes.variant == PolyVariant::kPOWERS
            ? static_cast<float const*>(inputs[contract::kINPUT_COEFF])
            : nullptr;
        params.y = outputs[contract::kOUTPUT_Y];
        params.stateOut = static_cast<float*>(outputs[contract::kOUTPUT_STATE]);
        params.workspace = static_cast<float*>(workspace);
        params.batch = h.d[0];
        params.tokens = h.d[1];
        params.channels = h.d[2];
        params.order = mAttributes.order;
        params.selHeads = mAttributes.selHeads;
        params.variant = mAttributes.variant;
        params.gate = mAttributes.gate;
        params.dtype = inputDesc[contract::kINPUT_H].type == DataType::kHALF ? PolyDType::kFLOAT16 : PolyDType::kFLOAT32;
        if (char const* invalid = polyMixerValidate(params))
        {
            throw std::invalid_argument(invalid);
        }
        cudaError_t const status = polyMixerForward(params, stream);
        if (status != cudaSuccess)
        {
            throw std::runtime_error(std::string("kernel launch failed: ") + cudaGetErrorString(status));
        }
        return kSTATUS_OK;
    }
    catch (std::exception const& e)
    {
        reportPluginError("enqueue", e.what());
    }
    return kSTATUS_ERROR;
}

nvinfer1::IPluginV3* PolyMixerPlugin::attachToContext(nvinfer1::IPluginResourceContext* /* context */) noexcept
{
    // No per-context resources: the workspace comes from TensorRT on every enqueue.
    return clone();
}

nvinfer1::PluginFieldCollection const* PolyMixerPlugin::getFieldsToSerialize() noexcept
{
    return &mSerialCollection;
}

} // namespace plugin
} // namespace pomexport
