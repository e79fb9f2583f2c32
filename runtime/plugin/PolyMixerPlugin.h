/*
 * The PolyMixer TensorRT plugin: IPluginV3 with core, build and runtime capabilities, and its
 * IPluginCreatorV3One (name "PolyMixer", version "1", namespace "pomexport"; docs/design.md §2).
 *
 * Written against the public TensorRT 10.x / 11.x headers; scripts/check_trt_headers.sh
 * compile-checks it against a given header copy.
 */
#ifndef POMEXPORT_POLY_MIXER_PLUGIN_H
#define POMEXPORT_POLY_MIXER_PLUGIN_H

#include "NvInferRuntime.h"
#include "polyMixerContract.h"
#include "polyMixerKernel.cuh"

#include <cstdint>
#include <string>
#include <vector>

namespace pomexport
{
namespace plugin
{

//! The op's attributes, parsed and checked.
struct PolyMixerAttributes
{
    PolyVariant variant{PolyVariant::kMOMENTS};
    int32_t order{2};
    PolyGate gate{PolyGate::kSIGMOID};
    int32_t selHeads{0};

    //! 5 inputs (h, g, state, count, coeff) for powers, 4 for moments.
    int32_t nbInputs() const noexcept;
    //! The attribute strings of the contract ("moments" | "powers", "sigmoid" | "hardsigmoid").
    char const* variantName() const noexcept;
    char const* gateName() const noexcept;
    //! Throws std::invalid_argument naming the first invalid attribute.
    void validate() const;
    //! "variant=moments order=2 gate=sigmoid sel_heads=0", for logs and the timing cache.
    std::string describe() const;
};

//! Parses a plugin field collection (ONNX attributes or serialised fields); missing fields keep
//! their defaults (contract.py's OP_ATTRIBUTES). Throws std::invalid_argument on bad input.
PolyMixerAttributes parseAttributes(nvinfer1::PluginFieldCollection const* fields);

//! Sends an error to TensorRT's logger (found through setLoggerFinder) or to stderr.
void reportPluginError(char const* where, char const* what) noexcept;

class PolyMixerPlugin final : public nvinfer1::IPluginV3,
                              public nvinfer1::IPluginV3OneCore,
                              public nvinfer1::IPluginV3OneBuild,
                              public nvinfer1::IPluginV3OneRuntime
{
public:
    explicit PolyMixerPlugin(PolyMixerAttributes const& attributes);
    PolyMixerPlugin(PolyMixerPlugin const& other);
    PolyMixerPlugin& operator=(PolyMixerPlugin const&) = delete;
    ~PolyMixerPlugin() override = default;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
        nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
        int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
        nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
        int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
        nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;
    char const* getTimingCacheID() noexcept override;
    char const* getMetadataString() noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
        int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
        void const* const* inputs, void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    //! Points mSerialFields at this object's own attribute storage (after construction or copy).
    void initSerialFields();
    //! Throws std::invalid_argument when the I/O shapes do not fit the attributes.
    void checkShapes(nvinfer1::Dims const* inputDims, int32_t nbInputs) const;

    PolyMixerAttributes mAttributes;
    std::string mDescription;
    std::vector<nvinfer1::PluginField> mSerialFields;
    nvinfer1::PluginFieldCollection mSerialCollection{};
};

//! The one creator of the library: PolyMixer, version 1, namespace "pomexport" (contract.py). The
//! plugin-flavor ONNX names that namespace in its plugin_namespace attribute (README "Loading").
class PolyMixerPluginCreator final : public nvinfer1::IPluginCreatorV3One
{
public:
    PolyMixerPluginCreator();
    ~PolyMixerPluginCreator() override = default;

    nvinfer1::IPluginV3* createPlugin(
        char const* name, nvinfer1::PluginFieldCollection const* fc, nvinfer1::TensorRTPhase phase) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFieldNames;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

} // namespace plugin
} // namespace pomexport

#endif // POMEXPORT_POLY_MIXER_PLUGIN_H
