// sha256 through OpenSSL EVP (libcrypto): streaming, so multi-GB engines never sit in memory.
#include "pomrt/sha256.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "pomrt/error.hpp"

namespace pomrt
{
namespace
{
constexpr size_t kChunk = size_t{1} << 20;

struct MdCtxDeleter
{
    void operator()(EVP_MD_CTX* ctx) const
    {
        EVP_MD_CTX_free(ctx);
    }
};

struct FileDeleter
{
    void operator()(std::FILE* f) const
    {
        std::fclose(f);
    }
};

using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

MdCtx newSha256()
{
    MdCtx ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    {
        throw Error(POMRT_ERR_INTERNAL, "OpenSSL: cannot initialise sha256");
    }
    return ctx;
}

std::string hexDigest(EVP_MD_CTX* ctx)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx, digest, &length) != 1)
    {
        throw Error(POMRT_ERR_INTERNAL, "OpenSSL: sha256 finalisation failed");
    }
    static char const kHex[] = "0123456789abcdef";
    std::string hex(2 * length, '0');
    for (unsigned int i = 0; i < length; ++i)
    {
        hex[2 * i] = kHex[digest[i] >> 4];
        hex[2 * i + 1] = kHex[digest[i] & 0xF];
    }
    return hex;
}
} // namespace

std::string sha256File(std::filesystem::path const& path)
{
    std::unique_ptr<std::FILE, FileDeleter> file(std::fopen(path.c_str(), "rb"));
    if (!file)
    {
        throw artifactError(path.string() + ": cannot open for hashing");
    }
    MdCtx ctx = newSha256();
    std::vector<unsigned char> buffer(kChunk);
    size_t got = 0;
    while ((got = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0)
    {
        if (EVP_DigestUpdate(ctx.get(), buffer.data(), got) != 1)
        {
            throw Error(POMRT_ERR_INTERNAL, "OpenSSL: sha256 update failed");
        }
    }
    if (std::ferror(file.get()))
    {
        throw artifactError(path.string() + ": read error while hashing");
    }
    return hexDigest(ctx.get());
}

std::string sha256Bytes(void const* data, size_t size)
{
    MdCtx ctx = newSha256();
    if (EVP_DigestUpdate(ctx.get(), data, size) != 1)
    {
        throw Error(POMRT_ERR_INTERNAL, "OpenSSL: sha256 update failed");
    }
    return hexDigest(ctx.get());
}

} // namespace pomrt
