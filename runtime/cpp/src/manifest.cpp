// manifest.json parsing (the format written by pomexport/export/artifact.py) and the
// verified Artifact: paths first, then presence and sha256 of every listed file, then no
// unlisted files.
#include "pomrt/manifest.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "decoder_entry.hpp"
#include "pomrt/error.hpp"
#include "pomrt/graph_check.hpp"
#include "pomrt/onnx_graph.hpp"
#include "pomrt/paths.hpp"
#include "pomrt/pinned.hpp"
#include "pomrt/sha256.hpp"
#include "pomrt/signature.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace pomrt
{
namespace
{
//! obj[key] as T, or an ArtifactError naming the manifest and the key.
template <typename T>
T field(json const& obj, char const* key, std::string const& where)
{
    auto const it = obj.find(key);
    if (it == obj.end())
    {
        throw artifactError(where + ": missing key '" + key + "'");
    }
    try
    {
        return it->get<T>();
    }
    catch (json::exception const&)
    {
        throw artifactError(where + ": key '" + key + "' has the wrong type (" + it->type_name() + ")");
    }
}

json const& object(json const& obj, char const* key, std::string const& where)
{
    auto const it = obj.find(key);
    if (it == obj.end() || !(it->is_object() || it->is_array()))
    {
        throw artifactError(where + ": missing or malformed '" + key + "'");
    }
    return *it;
}

ModelConfig parseConfig(json const& cfg, std::string const& where)
{
    ModelConfig c;
    c.inputSize = field<int32_t>(cfg, "input_size", where);
    c.inChannels = field<int32_t>(cfg, "in_channels", where);
    c.patchSize = field<int32_t>(cfg, "patch_size", where);
    c.width = field<int32_t>(cfg, "width", where);
    c.depth = field<int32_t>(cfg, "depth", where);
    c.order = field<int32_t>(cfg, "order", where);
    c.expansion = field<int32_t>(cfg, "expansion", where);
    c.variant = field<std::string>(cfg, "variant", where);
    c.gate = field<std::string>(cfg, "gate", where);
    c.selHeads = field<int32_t>(cfg, "sel_heads", where);
    c.numClasses = field<int32_t>(cfg, "num_classes", where);
    c.video = field<bool>(cfg, "video", where);
    c.textDim = field<int32_t>(cfg, "text_dim", where);
    if (c.patchSize < 1 || c.inputSize % c.patchSize != 0 || c.depth < 1 || c.width < 1)
    {
        throw artifactError(where + ": inconsistent model config");
    }
    return c;
}

std::vector<TensorSpec> parseTensors(json const& list, std::string const& where)
{
    std::vector<TensorSpec> specs;
    for (json const& item : list)
    {
        TensorSpec spec{field<std::string>(item, "name", where), {}, field<std::string>(item, "dtype", where)};
        for (json const& dim : object(item, "shape", where))
        {
            // The batch stays the symbol "B"; every other dim is resolved to an integer.
            spec.dims.push_back(dim.is_string() ? -1 : dim.get<int64_t>());
        }
        specs.push_back(std::move(spec));
    }
    return specs;
}

void parseFiles(json const& files, Manifest& m, std::string const& where)
{
    if (!files.is_object())
    {
        throw artifactError(where + ": has no 'files' table");
    }
    for (auto const& [name, entry] : files.items())
    {
        if (!entry.is_object() || !entry.contains("sha256") || !entry["sha256"].is_string())
        {
            throw artifactError(where + ": entry '" + name + "' has no sha256");
        }
        auto const bytes = entry.find("bytes");
        bool const sized = bytes != entry.end() && bytes->is_number_unsigned();
        m.files[name] = FileEntry{entry["sha256"].get<std::string>(), sized ? bytes->get<uint64_t>() : 0, sized};
    }
}

void parseEngineRecords(json const& doc, Manifest& m)
{
    auto const records = doc.find("engines");
    if (records == doc.end() || !records->is_object())
    {
        return;
    }
    for (auto const& [name, record] : records->items())
    {
        json const sha = record.is_object() ? record.value("key", json::object()).value("onnx_sha256", json()) : json();
        if (sha.is_string())
        {
            m.engineOnnxSha256[name] = sha.get<std::string>();
        }
    }
}

std::string readText(fs::path const& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof())
    {
        throw artifactError(path.string() + ": unreadable");
    }
    return text.str();
}
} // namespace

int32_t ModelConfig::stateWidth() const
{
    int32_t const c = expansion * width;
    return variant == "moments" ? order * c : c;
}

int32_t ModelConfig::tokensPerFrame() const
{
    int32_t const grid = inputSize / patchSize;
    return grid * grid;
}

int64_t ModelConfig::frameElements() const
{
    return int64_t{inChannels} * inputSize * inputSize;
}

TensorSpec const& Manifest::input(std::string const& name) const
{
    for (auto const& spec : inputs)
    {
        if (spec.name == name)
        {
            return spec;
        }
    }
    throw artifactError(std::string(kManifestName) + ": the IO contract has no input '" + name + "'");
}

TensorSpec const& Manifest::output(std::string const& name) const
{
    for (auto const& spec : outputs)
    {
        if (spec.name == name)
        {
            return spec;
        }
    }
    throw artifactError(std::string(kManifestName) + ": the IO contract has no output '" + name + "'");
}

bool Manifest::staleEngine(std::string const& plan) const
{
    auto const record = engineOnnxSha256.find(plan);
    if (record == engineOnnxSha256.end())
    {
        return false;
    }
    for (auto const& [flavor, file] : flavors)
    {
        auto const entry = files.find(file);
        if (entry != files.end() && entry->second.sha256 == record->second)
        {
            return false;
        }
    }
    return true;
}

Manifest parseManifest(std::string const& text, std::string const& where)
{
    json const doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object())
    {
        throw artifactError(where + ": unreadable manifest (not a JSON object)");
    }
    if (doc.value("format", std::string()) != kFormat)
    {
        throw artifactError(where + ": not a " + std::string(kFormat) + " manifest");
    }
    if (!doc.contains("format_version") || doc["format_version"] != kFormatVersion)
    {
        throw artifactError(where + ": format_version " + doc.value("format_version", json()).dump() + " unsupported");
    }
    Manifest m;
    json const& model = object(doc, "model", where);
    m.modelName = field<std::string>(model, "name", where);
    m.config = parseConfig(object(model, "config", where), where);
    m.variant = field<std::string>(doc, "variant", where);
    m.precision = field<std::string>(doc, "precision", where);
    m.flavors = field<std::map<std::string, std::string>>(doc, "flavors", where);
    m.opset = field<int32_t>(doc, "opset", where);
    json const& batch = object(doc, "batch", where);
    m.batchMin = field<int32_t>(batch, "min", where);
    m.batchOpt = field<int32_t>(batch, "opt", where);
    m.batchMax = field<int32_t>(batch, "max", where);
    json const& io = object(doc, "io", where);
    m.inputs = parseTensors(object(io, "inputs", where), where);
    m.outputs = parseTensors(object(io, "outputs", where), where);
    parseFiles(object(doc, "files", where), m, where);
    parseEngineRecords(doc, m);
    m.decoder = parseDecoderEntry(doc, m.files, where);
    return m;
}

Artifact::Artifact(fs::path root, Manifest manifest)
    : mRoot(std::move(root))
    , mManifest(std::move(manifest))
{
}

namespace
{
//! The largest ONNX file read into memory to be checked (protobuf's own limit).
constexpr uintmax_t kMaxOnnxBytes = uintmax_t{2} << 30;

bool isOnnx(std::string const& name)
{
    return name.size() > 5 && name.compare(name.size() - 5, 5, ".onnx") == 0;
}

//! A graph of the latent decoder stage (docs/design.md §6.2, decoder/<role>.onnx): checked
//! against the decoder entry's IO (when the entry names it), never against the step contract.
bool isDecoderGraph(std::string const& name)
{
    return name.rfind("decoder/", 0) == 0;
}

//! Path, type, links and size of one listed file: metadata only, nothing read.
fs::path checkListedFile(fs::path const& root, std::string const& name, FileEntry const& entry)
{
    fs::path const path = safeMember(root, name, kManifestName);
    if (!fs::is_regular_file(path))
    {
        throw artifactError(name + ": listed in " + kManifestName + " but missing from " + root.string());
    }
    std::error_code ec;
    auto const links = fs::hard_link_count(path, ec);
    if (!ec && links > 1)
    {
        // A hard link shares its bytes with a file outside the artifact: anyone who can
        // write that file can swap the engine after it was hashed.
        throw artifactError(name + ": has " + std::to_string(links)
            + " hard links; copy the artifact (cp -r) instead of linking");
    }
    auto const size = fs::file_size(path, ec);
    if (!ec && entry.hasBytes && size != entry.bytes)
    {
        // Before hashing: a wrong size costs no read.
        throw artifactError(name + ": " + std::to_string(size) + " bytes but " + kManifestName + " says "
            + std::to_string(entry.bytes) + "; the artifact was modified or is corrupt");
    }
    return path;
}

void checkHash(std::string const& name, FileEntry const& entry, std::string const& actual)
{
    if (actual != entry.sha256)
    {
        throw artifactError(name + ": sha256 mismatch (manifest " + entry.sha256.substr(0, 12) + "..., file "
            + actual.substr(0, 12) + "...); the artifact was modified or is corrupt");
    }
}

//! An ONNX file read once: its hash checked on those bytes, then the manifest's model config
//! checked against the graph they hold, before anything is sized from the config.
void verifyOnnx(fs::path const& root, fs::path const& path, std::string const& name, Manifest& m,
    VerifyOptions const& options)
{
    std::vector<uint8_t> const bytes = readVerifiedBytes(path, options.hashes ? m.files.at(name).sha256 : std::string(),
        kMaxOnnxBytes, name);
    OnnxGraph const graph = parseOnnxGraph(bytes.data(), bytes.size(), name);
    std::string const role = m.decoder ? m.decoder->roleOf(name) : std::string();
    if (!role.empty())
    {
        checkDecoderGraph(name, *m.decoder, role, graph);
    }
    else
    {
        checkConfigAgainstGraph(name, m, graph);
    }
    std::vector<std::string>& members = m.externalData[name];
    for (std::string const& location : graph.externalLocations())
    {
        // Relative to the ONNX file's folder, inside the artifact, and listed (hashed).
        std::string const member = (fs::path(name).parent_path() / location).generic_string();
        safeMember(root, member, name);
        if (m.files.count(member) == 0)
        {
            throw artifactError(name + ": external data '" + location + "' is not listed in " + kManifestName);
        }
        members.push_back(member);
    }
}

void verifyListed(fs::path const& root, Manifest& m, VerifyOptions const& options)
{
    std::map<std::string, fs::path> paths;
    for (auto const& [name, entry] : m.files) // metadata of every file before any hash
    {
        paths[name] = checkListedFile(root, name, entry);
    }
    for (auto const& [name, entry] : m.files)
    {
        bool const decoderGraph = m.decoder && !m.decoder->roleOf(name).empty();
        if (isOnnx(name) && (decoderGraph || !isDecoderGraph(name)))
        {
            verifyOnnx(root, paths.at(name), name, m, options);
        }
        else if (options.hashes)
        {
            checkHash(name, entry, sha256File(paths.at(name)));
        }
    }
}

bool hidden(fs::path const& rel)
{
    for (auto const& part : rel)
    {
        if (!part.empty() && part.string()[0] == '.')
        {
            return true;
        }
    }
    return false;
}

void refuseUnlisted(fs::path const& root, Manifest const& m)
{
    // Mirrors export/artifact/load.py's _refuse_unlisted: everything but manifest.json,
    // device.json, their signatures and dot-files is listed (in one or the other).
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it)
    {
        fs::path const rel = fs::relative(it->path(), root);
        std::string const name = rel.generic_string();
        if (name == kManifestName || name == kSignatureName || name == kDeviceName || name == kDeviceSignatureName
            || hidden(rel)
            || it->is_directory(/*follows links*/))
        {
            if (it->is_symlink() && it->is_directory() && !hidden(rel))
            {
                throw artifactError(name + ": a directory symlink in the artifact (not listed in " + kManifestName + ")");
            }
            continue;
        }
        if (m.files.count(name) == 0)
        {
            throw artifactError(name + ": present in " + root.string() + " but not listed in " + kManifestName);
        }
    }
}
} // namespace

Artifact Artifact::open(fs::path const& root, VerifyOptions const& options)
{
    fs::path const manifestPath = root / kManifestName;
    if (!fs::is_directory(root))
    {
        throw artifactError(root.string() + ": not an artifact directory");
    }
    if (!fs::is_regular_file(manifestPath))
    {
        throw artifactError(manifestPath.string() + ": missing (not a pomexport artifact)");
    }
    // The signature is checked over the bytes that are then parsed, before any other file.
    std::string const text = readText(manifestPath);
    std::vector<std::string> const keys = options.trustedKeys.empty() ? trustedKeysFromEnv() : options.trustedKeys;
    checkManifestSignature(root, text, keys);
    Manifest m = parseManifest(text, manifestPath.string());
    mergeDeviceFiles(root, text, m, keys);
    verifyListed(root, m, options);
    for (auto const& [flavor, name] : m.flavors)
    {
        if (m.files.count(name) == 0)
        {
            throw artifactError(name + ": the " + flavor + " flavor is not listed in " + kManifestName);
        }
    }
    if (options.refuseUnlisted)
    {
        refuseUnlisted(root, m);
    }
    return Artifact(root, std::move(m));
}

bool Artifact::lists(std::string const& name) const
{
    return mManifest.files.count(name) != 0;
}

fs::path Artifact::path(std::string const& name) const
{
    if (!lists(name))
    {
        throw artifactError(name + ": not listed in " + (mRoot / kManifestName).string());
    }
    return safeMember(mRoot, name, kManifestName);
}

} // namespace pomrt
