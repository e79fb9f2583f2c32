// The artifact manifest (manifest.json, written by pomexport/export/artifact.py) and the
// verified artifact directory it describes (docs/design.md §6).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pomrt/decoder.hpp"

namespace pomrt
{

//! The model's architecture: manifest["model"]["config"] (PoMDiTConfig.to_dict()).
struct ModelConfig
{
    int32_t inputSize{0};
    int32_t inChannels{0};
    int32_t patchSize{1};
    int32_t width{0};
    int32_t depth{0};
    int32_t order{0};
    int32_t expansion{0};
    std::string variant;
    std::string gate;
    int32_t selHeads{0};
    int32_t numClasses{0};
    bool video{true};
    int32_t textDim{0};

    //! C: PolyMixer state channels per layer (k*e*D for moments, e*D for powers).
    int32_t stateWidth() const;
    int32_t tokensPerFrame() const;
    //! Floats in one frame: C_in x H x W.
    int64_t frameElements() const;
};

//! One graph input or output of the IO contract; a dim of -1 is the batch symbol "B".
struct TensorSpec
{
    std::string name;
    std::vector<int64_t> dims;
    std::string dtype; // float32 | float16 | int64
};

struct FileEntry
{
    std::string sha256;
    uint64_t bytes{0};
    bool hasBytes{false}; //!< the manifest gives the size (checked before hashing)
};

struct Manifest
{
    std::string modelName;
    ModelConfig config;
    std::string variant;
    std::string precision;
    std::map<std::string, std::string> flavors; // portable|plugin -> file name
    int32_t opset{0};
    int32_t batchMin{1};
    int32_t batchOpt{1};
    int32_t batchMax{1};
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;
    std::map<std::string, FileEntry> files;
    //! Plan name -> sha256 of the ONNX it was built from, from the Python builder's records
    //! (manifest["engines"][name]["key"]["onnx_sha256"], export/artifact/engines.py) and
    //! device.json's.
    std::map<std::string, std::string> engineOnnxSha256;
    //! ONNX file -> the listed files holding its external data (read from the graph when the
    //! artifact is opened; a parser that needs them gets verified copies, engine.cpp).
    std::map<std::string, std::vector<std::string>> externalData;
    //! The latent decoder stage (manifest["decoder"], docs/design.md §6.2); none: no decoder.
    std::optional<DecoderSpec> decoder;

    //! Whether a listed plan was recorded as built from an ONNX that is no longer in the
    //! artifact (re-exported since): false when there is no record.
    bool staleEngine(std::string const& plan) const;

    TensorSpec const& input(std::string const& name) const;
    TensorSpec const& output(std::string const& name) const;
};

inline constexpr char const* kManifestName = "manifest.json";
// The Ed25519 signature of manifest.json (export/signing.py): beside it, never listed in it.
inline constexpr char const* kSignatureName = "manifest.sig";
inline constexpr char const* kFormat = "pomexport-artifact";
inline constexpr int32_t kFormatVersion = 1;

//! Parse manifest text; `where` names the file in messages. Throws Error(ARTIFACT).
Manifest parseManifest(std::string const& text, std::string const& where);

// Files built on the device (plugin library, engines, timing cache) are recorded in
// device.json beside the manifest, which stays as shipped (and signed): docs/design.md §6.1.
inline constexpr char const* kDeviceName = "device.json";
inline constexpr char const* kDeviceSignatureName = "device.sig";
inline constexpr char const* kDeviceFormat = "pomexport-device-files";

//! Whether a device.json may list `name`: plugins/<x>.so, engines/<x>.plan or timing.cache.
bool deviceFileName(std::string const& name);

//! Add (or replace) one device-built file's entry in `root`/device.json, bound to the
//! manifest's current bytes, and rewrite it atomically (used to cache a freshly built engine);
//! manifest.json is never written. A record of an engine of that name is dropped (it described
//! the previous file), and so is device.sig (it signed the previous content).
void addDeviceFile(std::filesystem::path const& root, std::string const& name, FileEntry const& entry);

//! Add `root`/device.json's files (and engine records) to `m`: with `keyPaths`, device.sig
//! must sign it by one of them; it must be bound to `manifestBytes`; it may list only device
//! file names and decoder plans (decoder/<role>-*.plan, <role> one of m.decoder's roles; their
//! records go to m.decoder->engines), none the manifest lists. No device.json: nothing.
//! Throws Error(ARTIFACT).
void mergeDeviceFiles(std::filesystem::path const& root, std::string const& manifestBytes, Manifest& m,
    std::vector<std::string> const& keyPaths);

struct VerifyOptions
{
    bool hashes{true};         //!< check every listed file's sha256
    bool refuseUnlisted{true}; //!< fail on a regular file the manifest does not list
    //! PEM Ed25519 public keys manifest.sig must be signed by (empty: POMEXPORT_TRUSTED_KEYS;
    //! none there either: unsigned artifacts load)
    std::vector<std::string> trustedKeys{};
};

//! A verified artifact directory: its manifest and safe paths to the files it lists.
class Artifact
{
public:
    //! Read the manifest (signature first), then device.json (signed too when keys are
    //! configured), then check paths, sizes, presence, hashes, graphs and unlisted files.
    static Artifact open(std::filesystem::path const& root, VerifyOptions const& options = {});

    std::filesystem::path const& root() const
    {
        return mRoot;
    }

    Manifest const& manifest() const
    {
        return mManifest;
    }

    bool lists(std::string const& name) const;
    //! Path of a listed file (re-checked against the directory). Throws when not listed.
    std::filesystem::path path(std::string const& name) const;

private:
    Artifact(std::filesystem::path root, Manifest manifest);

    std::filesystem::path mRoot;
    Manifest mManifest;
};

} // namespace pomrt
