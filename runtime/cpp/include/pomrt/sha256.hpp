// sha256 of files through OpenSSL's EVP interface (the same digest as Python's hashlib).
#pragma once

#include <filesystem>
#include <string>

namespace pomrt
{

//! Lower-case hex sha256 of a file, read in 1 MiB chunks; throws Error(POMRT_ERR_ARTIFACT).
std::string sha256File(std::filesystem::path const& path);

//! Lower-case hex sha256 of a byte string.
std::string sha256Bytes(void const* data, size_t size);

} // namespace pomrt
