// Parsing the manifest's `decoder` entry (manifest.cpp's private helper; nlohmann stays out of
// the public headers).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <optional>
#include <string>

#include "pomrt/decoder.hpp"
#include "pomrt/manifest.hpp"

namespace pomrt
{

//! doc["decoder"] checked as export/artifact/decoder.py's check_decoder_entry does (types,
//! kind, precision, batch 1, files by role and listed in `files`, frames_per_step >= 1, each
//! role's IO with static shapes); nothing when the manifest has no entry. Throws ArtifactError.
std::optional<DecoderSpec> parseDecoderEntry(nlohmann::json const& doc, std::map<std::string, FileEntry> const& files,
    std::string const& where);

//! One engine record ({"key": {...}, "digest": ..., ...}, export/artifact/engines.py::engine_record)
//! of the decoder entry's `engines` or device.json's; none unless its key is well typed.
std::optional<DecoderEngineRecord> decoderEngineRecord(nlohmann::json const& record);

} // namespace pomrt
