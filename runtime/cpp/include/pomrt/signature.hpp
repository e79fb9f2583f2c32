// Ed25519 signatures on manifest.json (export/signing.py writes them): manifest.sig beside the
// manifest, {"format": "pomexport-signature", "algorithm": "ed25519", "key_id", "signature"}.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pomrt
{
inline constexpr char const* kTrustedKeysEnv = "POMEXPORT_TRUSTED_KEYS";

//! PEM public key paths from POMEXPORT_TRUSTED_KEYS (':'-separated; empty: none configured).
std::vector<std::string> trustedKeysFromEnv();

//! With `keyPaths` non-empty, throw an ArtifactError unless `root`/manifest.sig is a valid
//! signature over `manifestBytes` by one of the keys (unsigned, unreadable, another key, or
//! not matching: one line each, the wording of export/signing.py). No keys: no check.
void checkManifestSignature(std::filesystem::path const& root, std::string const& manifestBytes,
    std::vector<std::string> const& keyPaths);

//! The same check for any signed document: `signature` (a pomexport-signature file) over
//! `bytes`, the content of `document` (named in messages). No keys: no check.
void checkSignature(std::filesystem::path const& document, std::filesystem::path const& signature,
    std::string const& bytes, std::vector<std::string> const& keyPaths);
} // namespace pomrt
