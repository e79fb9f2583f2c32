// The manifest's decoder entry and the decoder graphs checked against it (issue 21), the C++
// twin of export/artifact/decoder.py: the same refusals, worded the same way.
#include "pomrt/decoder.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "decoder_entry.hpp"
#include "pomrt/error.hpp"

using nlohmann::json;

namespace pomrt
{
namespace
{
Error fail(std::string const& where, std::string const& what)
{
    return artifactError(where + ": decoder " + what);
}

std::string joined(std::vector<std::string> const& roles)
{
    std::string out;
    for (std::string const& role : roles)
    {
        out += (out.empty() ? "" : ", ") + role;
    }
    return out;
}

int32_t onnxType(std::string const& dtype)
{
    return dtype == "float32" ? 1 : dtype == "float16" ? 10 : 0;
}

//! One list of `io.graphs[role]`: name, static shape (ints >= 0), float32 or float16.
bool parseTensorList(json const& list, std::vector<DecoderTensor>& out)
{
    if (!list.is_array())
    {
        return false;
    }
    for (json const& e : list)
    {
        if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("shape")
            || !e["shape"].is_array() || !e.contains("dtype") || !e["dtype"].is_string()
            || onnxType(e["dtype"].get<std::string>()) == 0)
        {
            return false;
        }
        DecoderTensor t{e["name"].get<std::string>(), {}, e["dtype"].get<std::string>()};
        for (json const& d : e["shape"])
        {
            if (!d.is_number_integer() || d.get<int64_t>() < 0)
            {
                return false;
            }
            t.dims.push_back(d.get<int64_t>());
        }
        out.push_back(std::move(t));
    }
    return true;
}

DecoderGraphIo parseGraph(json const& graphs, std::string const& role, std::string const& where)
{
    DecoderGraphIo io;
    auto const it = graphs.find(role);
    bool const ok = it != graphs.end() && it->is_object() && it->contains("inputs") && it->contains("outputs")
        && parseTensorList((*it)["inputs"], io.inputs) && parseTensorList((*it)["outputs"], io.outputs);
    if (!ok)
    {
        throw fail(where, "io graph '" + role + "' must list inputs and outputs (name, static shape, dtype)");
    }
    return io;
}

void parseKindAndPrecision(json const& entry, DecoderSpec& spec, std::string const& where)
{
    spec.sourceClass = entry["class"].get<std::string>();
    json const kind = entry.value("kind", json());
    if (!kind.is_string() || decoderRoles(kind.get<std::string>()).empty())
    {
        throw fail(where, "kind " + kind.dump() + " is not one of image, wan-stream");
    }
    spec.kind = kind.get<std::string>();
    json const precision = entry.value("precision", json());
    json const batch = entry.value("batch", json());
    bool const batchOne = batch.is_number_integer() && batch.get<int64_t>() == 1;
    if (!precision.is_string() || (precision != "fp32" && precision != "fp16") || !batchOne)
    {
        throw fail(where, "precision must be one of ('fp32', 'fp16') and batch 1");
    }
    spec.precision = precision.get<std::string>();
}

void parseRoles(json const& entry, DecoderSpec& spec, std::string const& where)
{
    std::vector<std::string> const roles = decoderRoles(spec.kind);
    json const files = entry.value("files", json());
    json const frames = entry.value("frames_per_step", json());
    auto const sameRoles = [&](json const& table) {
        return table.is_object() && table.size() == roles.size()
            && std::all_of(roles.begin(), roles.end(), [&](std::string const& r) { return table.contains(r); });
    };
    if (!sameRoles(files))
    {
        throw fail(where, "files must name the graphs " + joined(roles));
    }
    bool const counts = sameRoles(frames) && std::all_of(frames.begin(), frames.end(), [](json const& n) {
        return n.is_number_integer() && n.get<int64_t>() >= 1;
    });
    if (!counts)
    {
        throw fail(where, "frames_per_step must give " + joined(roles) + " a count >= 1");
    }
    for (std::string const& role : roles)
    {
        spec.framesPerStep[role] = frames[role].get<int32_t>();
        spec.files[role] = files[role].is_string() ? files[role].get<std::string>() : files[role].dump();
    }
}

void parseIo(json const& io, DecoderSpec& spec, std::map<std::string, FileEntry> const& listed,
    std::string const& where)
{
    for (std::string const& role : decoderRoles(spec.kind))
    {
        std::string const want = "decoder/" + role + ".onnx";
        std::string const& name = spec.files.at(role);
        if (name != want)
        {
            throw fail(where, "file of '" + role + "' must be " + want + ", not '" + name + "'");
        }
        if (listed.count(name) == 0)
        {
            throw fail(where, "file " + name + " is not listed in " + kManifestName + "'s files");
        }
        spec.graphs[role] = parseGraph(io["graphs"], role, where);
    }
    json const pairs = io.value("state", json::object()).value("pairs", json::array());
    for (json const& pair : pairs)
    {
        if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string())
        {
            throw fail(where, "io.state.pairs must be [input, output] names");
        }
        spec.statePairs.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    }
}
//! entry["engines"]: {plan name: {"key": {...}, "digest": ..., ...}} (not checked by Python's
//! loader either; only well-typed records are kept, see DecoderSpec::engines).
void parseEngineRecords(json const& entry, DecoderSpec& spec)
{
    json const records = entry.value("engines", json());
    if (!records.is_object())
    {
        return;
    }
    for (auto const& [plan, record] : records.items())
    {
        if (std::optional<DecoderEngineRecord> typed = decoderEngineRecord(record))
        {
            spec.engines[plan] = *typed;
        }
    }
}
} // namespace

std::optional<DecoderEngineRecord> decoderEngineRecord(json const& record)
{
    json const key = record.is_object() ? record.value("key", json()) : json();
    bool const typed = key.is_object() && key.value("onnx_sha256", json()).is_string()
        && key.value("trt_version", json()).is_string() && key.value("gpu_name", json()).is_string()
        && key.value("sm", json()).is_number_integer();
    if (!typed)
    {
        return std::nullopt;
    }
    json const profile = key.value("profile", json());
    return DecoderEngineRecord{key["onnx_sha256"].get<std::string>(), key["trt_version"].get<std::string>(),
        key["gpu_name"].get<std::string>(), key["sm"].get<int64_t>(), profile.is_array() && profile.empty()};
}

std::vector<std::string> decoderRoles(std::string const& kind)
{
    if (kind == "image")
    {
        return {"decode"};
    }
    if (kind == "wan-stream")
    {
        return {"first", "next"};
    }
    return {};
}

std::string DecoderSpec::roleOf(std::string const& file) const
{
    for (auto const& [role, name] : files)
    {
        if (name == file)
        {
            return role;
        }
    }
    return std::string();
}

std::optional<DecoderSpec> parseDecoderEntry(json const& doc, std::map<std::string, FileEntry> const& files,
    std::string const& where)
{
    auto const it = doc.find("decoder");
    if (it == doc.end() || it->is_null())
    {
        return std::nullopt;
    }
    json const& entry = *it;
    if (!entry.is_object() || !entry.contains("class") || !entry["class"].is_string())
    {
        throw fail(where, "entry must be a table with a 'class'");
    }
    DecoderSpec spec;
    parseKindAndPrecision(entry, spec, where);
    parseRoles(entry, spec, where);
    json const io = entry.value("io", json());
    if (!io.is_object() || !io.contains("graphs") || !io["graphs"].is_object())
    {
        throw fail(where, "io must hold the graphs' inputs and outputs");
    }
    parseIo(io, spec, files, where);
    parseEngineRecords(entry, spec);
    return spec;
}

namespace
{
std::string dimsText(std::vector<int64_t> const& dims)
{
    std::string out = "[";
    for (size_t i = 0; i < dims.size(); ++i)
    {
        out += (i ? ", " : "") + std::to_string(dims[i]);
    }
    return out + "]";
}

void checkValues(std::string const& name, char const* kind, std::vector<OnnxValue> const& values,
    std::vector<DecoderTensor> const& want)
{
    bool sameNames = values.size() == want.size();
    for (size_t i = 0; sameNames && i < values.size(); ++i)
    {
        sameNames = values[i].name == want[i].name;
    }
    if (!sameNames)
    {
        throw artifactError(name + ": graph " + kind + " differ from the decoder entry's");
    }
    for (size_t i = 0; i < values.size(); ++i)
    {
        OnnxValue const& v = values[i];
        bool same = v.elemType == onnxType(want[i].dtype) && v.dims.size() == want[i].dims.size();
        for (size_t d = 0; same && d < v.dims.size(); ++d)
        {
            same = v.dims[d].isStatic && v.dims[d].value == want[i].dims[d];
        }
        if (!same)
        {
            throw artifactError(name + ": " + v.name + " is not " + want[i].dtype + " " + dimsText(want[i].dims)
                + " as the decoder entry of " + kManifestName + " says");
        }
    }
}
} // namespace

void checkDecoderGraph(std::string const& name, DecoderSpec const& spec, std::string const& role, OnnxGraph const& graph)
{
    DecoderGraphIo const& io = spec.graphs.at(role);
    checkValues(name, "inputs", graph.inputs, io.inputs);
    checkValues(name, "outputs", graph.outputs, io.outputs);
}

} // namespace pomrt
