// The manifest's model config against the ONNX graph (graph_check.hpp); the messages follow
// export/artifact/graph_check.py.
#include "pomrt/graph_check.hpp"

#include <map>
#include <sstream>
#include <vector>

#include "pomrt/error.hpp"

namespace pomrt
{
namespace
{

// Initializer name prefixes (torch module paths; fp16 appends "_float16", int8 "_<node>_int8").
constexpr char const* kLabelTable = "model.label.weight";
constexpr char const* kPatchProj = "model.patch.proj.weight";
constexpr char const* kDomain = "pomexport";
constexpr char const* kOpType = "PolyMixer";
constexpr int64_t kBatch = -1;

//! The step IO contract (export/artifact/contract.py): tensor -> symbolic axes.
std::map<std::string, std::vector<std::string>> const& contract()
{
    static std::map<std::string, std::vector<std::string>> const kContract{
        {"x_t", {"B", "C_in", "H", "W"}},
        {"t", {"B"}},
        {"label", {"B"}},
        {"frame_index", {"B"}},
        {"state", {"L", "B", "C"}},
        {"count", {"B"}},
        {"v", {"B", "C_in", "H", "W"}},
        {"state_out", {"L", "B", "C"}},
    };
    return kContract;
}

//! Which config fields an axis comes from (for the message).
std::string fieldOf(std::string const& symbol)
{
    static std::map<std::string, std::string> const kFields{{"C_in", "in_channels"}, {"H", "input_size"},
        {"W", "input_size"}, {"L", "depth"}, {"C", "width*expansion(*order)"}};
    auto const it = kFields.find(symbol);
    return it == kFields.end() ? "?" : it->second;
}

//! Dims of a contract tensor from the config (int64: no overflow on a hostile config).
std::vector<int64_t> expectedDims(std::vector<std::string> const& symbols, ModelConfig const& c)
{
    int64_t const channels = int64_t{c.expansion} * c.width;
    std::map<std::string, int64_t> const known{{"B", kBatch}, {"C_in", c.inChannels}, {"H", c.inputSize},
        {"W", c.inputSize}, {"L", c.depth}, {"C", c.variant == "moments" ? c.order * channels : channels}};
    std::vector<int64_t> dims;
    for (auto const& s : symbols)
    {
        dims.push_back(known.at(s));
    }
    return dims;
}

std::string show(std::vector<int64_t> const& dims)
{
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < dims.size(); ++i)
    {
        out << (i ? ", " : "");
        if (dims[i] == kBatch)
        {
            out << "\"B\"";
        }
        else
        {
            out << dims[i];
        }
    }
    out << ']';
    return out.str();
}

std::string show(OnnxDim const& dim)
{
    return dim.isStatic ? std::to_string(dim.value) : (dim.param.empty() ? "?" : dim.param);
}

//! The manifest's io shapes are what its config derives (a manifest that contradicts itself).
void checkIoAgainstConfig(Manifest const& m)
{
    for (auto const* list : {&m.inputs, &m.outputs})
    {
        for (TensorSpec const& spec : *list)
        {
            auto const symbols = contract().find(spec.name);
            if (symbols == contract().end())
            {
                continue;
            }
            std::vector<int64_t> const want = expectedDims(symbols->second, m.config);
            if (spec.dims != want)
            {
                throw artifactError(std::string(kManifestName) + ": io " + spec.name + " shape " + show(spec.dims)
                    + " but its model config gives " + show(want) + "; refusing a manifest that contradicts itself");
            }
        }
    }
}

int32_t onnxType(std::string const& dtype)
{
    return dtype == "float32" ? 1 : dtype == "float16" ? 10 : dtype == "int64" ? 7 : 0;
}

//! Graph input/output names (in order), dtypes and ranks against the manifest's io.
void checkGraphIo(std::string const& name, Manifest const& m, OnnxGraph const& g)
{
    bool const text = m.config.textDim != 0;
    for (bool const inputs : {true, false})
    {
        std::vector<TensorSpec const*> want;
        for (TensorSpec const& spec : inputs ? m.inputs : m.outputs)
        {
            if (!(text && spec.name == "label"))
            {
                want.push_back(&spec);
            }
        }
        std::vector<OnnxValue const*> have;
        for (OnnxValue const& value : inputs ? g.inputs : g.outputs)
        {
            if (!(text && value.name == "text_emb"))
            {
                have.push_back(&value);
            }
        }
        std::string haveNames;
        std::string wantNames;
        for (auto const* v : have)
        {
            haveNames += (haveNames.empty() ? "" : ", ") + v->name;
        }
        for (auto const* s : want)
        {
            wantNames += (wantNames.empty() ? "" : ", ") + s->name;
        }
        char const* kind = inputs ? "inputs" : "outputs";
        if (haveNames != wantNames || have.size() != want.size())
        {
            throw artifactError(name + ": graph " + kind + " [" + haveNames + "] differ from " + kManifestName + "'s ["
                + wantNames + "]");
        }
        for (size_t i = 0; i < have.size(); ++i)
        {
            int32_t const dtype = onnxType(want[i]->dtype);
            if (dtype != 0 && have[i]->elemType != dtype)
            {
                throw artifactError(name + ": " + have[i]->name + " is not " + want[i]->dtype + " as " + kManifestName + " says");
            }
            if (have[i]->hasShape && have[i]->dims.size() != want[i]->dims.size())
            {
                throw artifactError(name + ": " + have[i]->name + " has rank " + std::to_string(have[i]->dims.size())
                    + ", not " + std::to_string(want[i]->dims.size()));
            }
        }
    }
}

//! Every axis the config resolves to a number is that static dim in the graph.
void checkIoDims(std::string const& name, ModelConfig const& c, OnnxGraph const& g)
{
    for (auto const* list : {&g.inputs, &g.outputs})
    {
        for (OnnxValue const& value : *list)
        {
            auto const symbols = contract().find(value.name);
            if (symbols == contract().end())
            {
                continue;
            }
            if (!value.hasShape || value.dims.size() != symbols->second.size())
            {
                throw artifactError(name + ": " + value.name + " has no static shape of rank "
                    + std::to_string(symbols->second.size()) + "; cannot check it");
            }
            std::vector<int64_t> const want = expectedDims(symbols->second, c);
            for (size_t axis = 0; axis < want.size(); ++axis)
            {
                OnnxDim const& have = value.dims[axis];
                if (want[axis] != kBatch && !(have.isStatic && have.value == want[axis]))
                {
                    throw artifactError(name + ": " + value.name + " axis " + std::to_string(axis) + " is " + show(have)
                        + " in the graph but the manifest's model config (" + fieldOf(symbols->second[axis])
                        + ") says " + std::to_string(want[axis]) + "; refusing a config that does not describe the graph");
                }
            }
        }
    }
}

OnnxInitializer const* initializer(OnnxGraph const& g, std::string const& prefix)
{
    for (OnnxInitializer const& tensor : g.initializers)
    {
        if (tensor.name == prefix || tensor.name.rfind(prefix + "_", 0) == 0)
        {
            return &tensor;
        }
    }
    return nullptr;
}

//! The label table against num_classes and width, the patch projection against width,
//! in_channels and patch_size; a class model without a label table is refused.
void checkInitializers(std::string const& name, ModelConfig const& c, OnnxGraph const& g)
{
    if (c.textDim == 0)
    {
        OnnxInitializer const* table = initializer(g, kLabelTable);
        if (table == nullptr)
        {
            throw artifactError(name + ": no label embedding table (" + kLabelTable
                + ") in the graph; cannot check num_classes");
        }
        std::vector<int64_t> const want{int64_t{c.numClasses} + 1, c.width};
        if (table->dims != want)
        {
            throw artifactError(name + ": the label table is " + show(table->dims)
                + " but the manifest's model config (num_classes + 1, width) says " + show(want));
        }
    }
    if (OnnxInitializer const* proj = initializer(g, kPatchProj))
    {
        std::vector<int64_t> const want{c.width, c.inChannels, c.patchSize, c.patchSize};
        if (proj->dims != want)
        {
            throw artifactError(name + ": the patch projection is " + show(proj->dims)
                + " but the manifest's model config (width, in_channels, patch_size x2) says " + show(want));
        }
    }
}

//! Every PolyMixer node's variant/order/gate against the config (the op's attributes).
void checkMixerNodes(std::string const& name, ModelConfig const& c, OnnxGraph const& g)
{
    for (OnnxNode const& node : g.nodes)
    {
        if (node.opType != kOpType || node.domain != kDomain)
        {
            continue;
        }
        for (auto const& [attr, want] : {std::pair<char const*, std::string const&>{"variant", c.variant},
                 std::pair<char const*, std::string const&>{"gate", c.gate}})
        {
            auto const it = node.strings.find(attr);
            if (it != node.strings.end() && it->second != want)
            {
                throw artifactError(name + ": PolyMixer node '" + node.name + "' has " + attr + "='" + it->second
                    + "' but the manifest's model config says '" + want + "'");
            }
        }
        auto const order = node.ints.find("order");
        if (order != node.ints.end() && order->second != c.order)
        {
            throw artifactError(name + ": PolyMixer node '" + node.name + "' has order=" + std::to_string(order->second)
                + " but the manifest's model config says " + std::to_string(c.order));
        }
    }
}

} // namespace

void checkConfigAgainstGraph(std::string const& name, Manifest const& manifest, OnnxGraph const& graph)
{
    checkIoAgainstConfig(manifest);
    checkGraphIo(name, manifest, graph);
    checkIoDims(name, manifest.config, graph);
    checkInitializers(name, manifest.config, graph);
    checkMixerNodes(name, manifest.config, graph);
}

} // namespace pomrt
