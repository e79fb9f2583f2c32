// The bytes that were verified are the bytes that run (issue 22: time-of-check/time-of-use),
// the C++ twin of export/artifact/pinned.py. A file is read once; its hash is checked on those
// bytes; a consumer that needs a path (dlopen, a parser resolving external data) gets a sealed
// copy of them that nobody can change, not the original path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pomrt
{

//! `path`'s bytes, read once through one file descriptor (at most `maxBytes`), with their
//! sha256 checked against `sha256` (empty: no check). Throws Error(POMRT_ERR_ARTIFACT)
//! naming `what`: unreadable, not a regular file, too large, or another hash.
std::vector<uint8_t> readVerifiedBytes(std::filesystem::path const& path, std::string const& sha256,
    uintmax_t maxBytes, std::string const& what);

//! A file holding fixed bytes that cannot change while the object lives: a memfd sealed
//! against writes, growth and shrinking (Linux), else a 0500 file in a private 0700 temporary
//! directory (removed with the object). path() is what dlopen or a parser opens; each object's
//! path is unique while it lives.
class SealedFile
{
public:
    SealedFile(std::vector<uint8_t> const& bytes, std::string const& name);
    SealedFile(SealedFile const&) = delete;
    SealedFile& operator=(SealedFile const&) = delete;
    ~SealedFile();

    std::string const& path() const noexcept
    {
        return mPath;
    }

    //! Whether the bytes are in a sealed memfd (false: the private-directory fallback).
    bool sealed() const noexcept
    {
        return mFd >= 0;
    }

private:
    int mFd{-1};
    std::string mPath;
    std::string mDir;
};

//! A private temporary directory (0700, removed with the object) holding files written from
//! verified bytes: for a consumer that opens files by path relative to each other (TensorRT's
//! ONNX parser reading a model's external data).
class PrivateDirectory
{
public:
    PrivateDirectory();
    PrivateDirectory(PrivateDirectory const&) = delete;
    PrivateDirectory& operator=(PrivateDirectory const&) = delete;
    ~PrivateDirectory();

    //! Write `bytes` to `name` (relative, created with its folders, read-only); its path.
    std::filesystem::path add(std::string const& name, std::vector<uint8_t> const& bytes);

    std::filesystem::path const& path() const noexcept
    {
        return mDir;
    }

private:
    std::filesystem::path mDir;
};

} // namespace pomrt
