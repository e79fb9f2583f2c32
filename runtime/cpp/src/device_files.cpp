// device.json: the files built on the device (plugin library, engines, timing cache), recorded
// beside manifest.json so that the manifest stays as shipped and its signature holds
// (docs/design.md §6.1; export/artifact/device.py is the Python twin).
//
//   {"format": "pomexport-device-files", "format_version": 1,
//    "manifest_sha256": "<sha256 of the manifest.json bytes it extends>",
//    "files": {"engines/<gpu>-sm<NN>-trt<ver>.plan": {"sha256": ..., "bytes": ...}, ...},
//    "engines": {"engines/...plan": {"key": {"onnx_sha256": ...}}}}          (optional)
//
// It may also list the decoder stage's engines, decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan (the
// bundle's build.sh builds them with trtexec), <role> one of the artifact's decoder roles; their
// records join the decoder entry's (DecoderSpec::engines), where chooseDecoderEngine looks.
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "decoder_entry.hpp"
#include "pomrt/error.hpp"
#include "pomrt/manifest.hpp"
#include "pomrt/paths.hpp"
#include "pomrt/sha256.hpp"
#include "pomrt/signature.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace pomrt
{
namespace
{

constexpr int32_t kDeviceFormatVersion = 1;
constexpr uintmax_t kMaxDeviceBytes = 1 << 20;

std::string readSmall(fs::path const& path, std::string const& what)
{
    std::error_code ec;
    auto const status = fs::symlink_status(path, ec);
    if (fs::is_symlink(status) || !fs::is_regular_file(status))
    {
        throw artifactError(what + ": not a plain file");
    }
    if (fs::file_size(path, ec) > kMaxDeviceBytes)
    {
        throw artifactError(what + ": larger than " + std::to_string(kMaxDeviceBytes) + " bytes");
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in.good() && !in.eof())
    {
        throw artifactError(what + ": unreadable");
    }
    return text.str();
}

bool oneLevel(std::string const& name, std::string const& folder, std::string const& suffix)
{
    std::string const leaf = name.substr(std::min(name.size(), folder.size()));
    return name.rfind(folder, 0) == 0 && leaf.size() > suffix.size() && leaf.find('/') == std::string::npos
        && leaf.find('\\') == std::string::npos && leaf[0] != '.'
        && leaf.compare(leaf.size() - suffix.size(), suffix.size(), suffix) == 0;
}

FileEntry deviceEntry(json const& entry, std::string const& name)
{
    if (!entry.is_object() || !entry.contains("sha256") || !entry["sha256"].is_string() || !entry.contains("bytes")
        || !entry["bytes"].is_number_unsigned())
    {
        throw artifactError(std::string(kDeviceName) + ": entry '" + name + "' needs sha256 and bytes");
    }
    return FileEntry{entry["sha256"].get<std::string>(), entry["bytes"].get<uint64_t>(), true};
}

//! The role of a decoder plan name, decoder/<role>-<rest>.plan (what comes before the first
//! '-', as device.py's _DECODER_PLAN); empty when `name` is not one.
std::string decoderPlanRole(std::string const& name)
{
    std::string const folder = "decoder/";
    if (!oneLevel(name, folder, ".plan"))
    {
        return std::string();
    }
    std::string const leaf = name.substr(folder.size(), name.size() - folder.size() - 5);
    size_t const dash = leaf.find('-');
    return dash == std::string::npos || dash == 0 || dash + 1 >= leaf.size() ? std::string() : leaf.substr(0, dash);
}

//! Throw unless device.json may list `name`: a device-built file name, a decoder plan's of one
//! of the artifact's decoder roles (the manifest's own names are refused by the caller).
void checkDeviceName(std::string const& name, Manifest const& m)
{
    std::string const role = decoderPlanRole(name);
    if (role.empty() && !deviceFileName(name))
    {
        throw artifactError(std::string(kDeviceName) + ": may list only plugins/*.so, engines/*.plan and "
            + "timing.cache (and decoder/<role>-*.plan), not '" + name + "'");
    }
    if (!role.empty() && (!m.decoder || m.decoder->files.count(role) == 0))
    {
        std::string roles;
        for (auto const& [known, file] : m.decoder ? m.decoder->files : std::map<std::string, std::string>{})
        {
            roles += (roles.empty() ? "roles: " : ", ") + known;
        }
        throw artifactError(std::string(kDeviceName) + ": '" + name
            + "' is not the engine of a decoder role of this artifact ("
            + (roles.empty() ? std::string("it has no decoder stage") : roles) + ")");
    }
}

} // namespace

bool deviceFileName(std::string const& name)
{
    return name == "timing.cache" || oneLevel(name, "engines/", ".plan") || oneLevel(name, "plugins/", ".so");
}

namespace
{

//! device.json read, its signature checked (with keys), parsed, its format and its binding
//! to `manifestBytes` checked.
json readDeviceRecord(fs::path const& root, std::string const& manifestBytes, std::vector<std::string> const& keyPaths)
{
    fs::path const path = root / kDeviceName;
    // Signed by a trusted key when keys are configured, before anything in it is believed: it
    // names native code (plugin library, engines) built on the device.
    std::string const text = readSmall(path, kDeviceName);
    checkSignature(path, root / kDeviceSignatureName, text, keyPaths);
    json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object() || doc.value("format", std::string()) != kDeviceFormat
        || doc.value("format_version", 0) != kDeviceFormatVersion)
    {
        throw artifactError(std::string(kDeviceName) + ": not a " + kDeviceFormat + " v1 record");
    }
    if (doc.value("manifest_sha256", std::string()) != sha256Bytes(manifestBytes.data(), manifestBytes.size()))
    {
        throw artifactError(std::string(kDeviceName) + ": records files built for another " + kManifestName
            + "; rebuild on the device (build.sh) or remove it");
    }
    if (!doc.contains("files") || !doc["files"].is_object())
    {
        throw artifactError(std::string(kDeviceName) + ": has no 'files' table");
    }
    return doc;
}

} // namespace

void mergeDeviceFiles(fs::path const& root, std::string const& manifestBytes, Manifest& m,
    std::vector<std::string> const& keyPaths)
{
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(root / kDeviceName, ec)))
    {
        return;
    }
    json const doc = readDeviceRecord(root, manifestBytes, keyPaths);
    json const& files = doc["files"];
    for (auto const& [name, entry] : files.items())
    {
        checkDeviceName(name, m);
        if (m.files.count(name) != 0)
        {
            throw artifactError(std::string(kDeviceName) + ": '" + name + "' is already listed in " + kManifestName
                + "; a device record cannot replace a shipped file");
        }
        m.files[name] = deviceEntry(entry, name);
        if (!decoderPlanRole(name).empty())
        {
            m.decoder->engines.erase(name); // a shipped record of an unshipped plan: not this file's
        }
    }
    json records = doc.value("engines", json::object());
    if (!records.is_object())
    {
        records = json::object();
    }
    for (auto const& [name, record] : records.items())
    {
        if (!files.contains(name))
        {
            continue;
        }
        if (!decoderPlanRole(name).empty()) // a listed decoder plan: the artifact has a decoder
        {
            if (std::optional<DecoderEngineRecord> const typed = decoderEngineRecord(record))
            {
                m.decoder->engines[name] = *typed;
            }
            continue;
        }
        json const sha = record.is_object() ? record.value("key", json::object()).value("onnx_sha256", json()) : json();
        if (sha.is_string())
        {
            m.engineOnnxSha256[name] = sha.get<std::string>();
        }
    }
}

void addDeviceFile(fs::path const& root, std::string const& name, FileEntry const& entry)
{
    if (!deviceFileName(name))
    {
        throw artifactError(name + ": not a device-built file name");
    }
    std::string const manifest = readSmall(root / kManifestName, kManifestName);
    std::string const binding = sha256Bytes(manifest.data(), manifest.size());
    json const shipped = json::parse(manifest, nullptr, false);
    if (shipped.is_object() && shipped.contains("files") && shipped["files"].is_object() && shipped["files"].contains(name))
    {
        throw artifactError(name + ": listed in " + kManifestName + " (shipped); a device record cannot replace it");
    }
    fs::path const path = root / kDeviceName;
    ordered_json doc;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(path, ec)))
    {
        doc = ordered_json::parse(readSmall(path, kDeviceName), nullptr, false);
    }
    if (doc.is_discarded() || !doc.is_object() || doc.value("manifest_sha256", std::string()) != binding
        || !doc.contains("files") || !doc["files"].is_object())
    {
        doc = ordered_json{{"format", kDeviceFormat}, {"format_version", kDeviceFormatVersion},
            {"manifest_sha256", binding}, {"files", ordered_json::object()}};
    }
    doc["files"][name] = ordered_json{{"sha256", entry.sha256}, {"bytes", entry.bytes}};
    if (doc.contains("engines") && doc["engines"].is_object())
    {
        doc["engines"].erase(name);
    }
    fs::remove(root / kDeviceSignatureName, ec); // it signed the previous content
    atomicWrite(path, doc.dump(2) + "\n");       // the same layout as json.dumps(indent=2)
}

} // namespace pomrt
