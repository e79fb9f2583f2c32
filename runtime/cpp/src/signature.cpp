// Ed25519 manifest signatures through OpenSSL's libcrypto (EVP_DigestVerify), mirroring
// export/signing.py: same file, same key ids (sha256 of the raw key, 16 hex), same messages.
#include "pomrt/signature.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "pomrt/error.hpp"
#include "pomrt/sha256.hpp"

namespace fs = std::filesystem;

namespace pomrt
{
namespace
{
constexpr char const* kSignatureFile = "manifest.sig";
constexpr std::uintmax_t kMaxSignatureBytes = 4096;

struct KeyDeleter
{
    void operator()(EVP_PKEY* key) const
    {
        EVP_PKEY_free(key);
    }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;

struct MdCtxDeleter
{
    void operator()(EVP_MD_CTX* ctx) const
    {
        EVP_MD_CTX_free(ctx);
    }
};

struct TrustedKey
{
    std::string id;
    Key key;
};

TrustedKey loadPublicKey(std::string const& path)
{
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
    {
        throw artifactError(path + ": cannot read the public key");
    }
    Key key(PEM_read_PUBKEY(f, nullptr, nullptr, nullptr));
    std::fclose(f);
    if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519)
    {
        throw artifactError(path + ": not an Ed25519 PEM public key");
    }
    unsigned char raw[32];
    size_t len = sizeof(raw);
    if (EVP_PKEY_get_raw_public_key(key.get(), raw, &len) != 1 || len != sizeof(raw))
    {
        throw artifactError(path + ": cannot read the raw Ed25519 key");
    }
    std::string const id = sha256Bytes(raw, len).substr(0, 16);
    return TrustedKey{id, std::move(key)};
}

std::string base64Decode(std::string const& text, std::string const& where)
{
    std::string out(text.size() / 4 * 3 + 3, '\0');
    int const n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
        reinterpret_cast<unsigned char const*>(text.data()), static_cast<int>(text.size()));
    if (n < 0 || text.size() % 4 != 0)
    {
        throw artifactError(where + ": unreadable signature (base64)");
    }
    size_t padding = 0;
    for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
    {
        ++padding;
    }
    out.resize(static_cast<size_t>(n) - padding);
    return out;
}

std::string readSignature(fs::path const& path)
{
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(path, ec)) || fs::file_size(path, ec) > kMaxSignatureBytes)
    {
        throw artifactError(path.string() + ": not a plain signature file");
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}
} // namespace

std::vector<std::string> trustedKeysFromEnv()
{
    std::vector<std::string> keys;
    char const* value = std::getenv(kTrustedKeysEnv);
    std::stringstream parts(value != nullptr ? value : "");
    for (std::string part; std::getline(parts, part, ':');)
    {
        if (!part.empty())
        {
            keys.push_back(part);
        }
    }
    return keys;
}

void checkManifestSignature(
    fs::path const& root, std::string const& manifestBytes, std::vector<std::string> const& keyPaths)
{
    checkSignature(root / "manifest.json", root / kSignatureFile, manifestBytes, keyPaths);
}

void checkSignature(fs::path const& document, fs::path const& sigPath, std::string const& manifestBytes,
    std::vector<std::string> const& keyPaths)
{
    if (keyPaths.empty())
    {
        return;
    }
    std::string const where = document.string();
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(sigPath, ec)))
    {
        throw artifactError(where + ": unsigned, and " + std::to_string(keyPaths.size())
            + " trusted key(s) are configured; refusing it");
    }
    std::string signer;
    std::string signature;
    try
    {
        auto const doc = nlohmann::json::parse(readSignature(sigPath));
        if (doc.at("format") != "pomexport-signature" || doc.at("algorithm") != "ed25519")
        {
            throw artifactError(where + ": not a pomexport-signature (ed25519) signature");
        }
        signer = doc.at("key_id").get<std::string>();
        signature = base64Decode(doc.at("signature").get<std::string>(), where);
    }
    catch (nlohmann::json::exception const& e)
    {
        throw artifactError(where + ": unreadable signature (" + std::string(e.what()).substr(0, 100) + ")");
    }
    if (signature.size() != 64)
    {
        throw artifactError(where + ": not a pomexport-signature (ed25519) signature");
    }
    for (auto const& path : keyPaths)
    {
        TrustedKey const trusted = loadPublicKey(path);
        if (trusted.id != signer)
        {
            continue;
        }
        std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
        bool const ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, trusted.key.get()) == 1
            && EVP_DigestVerify(ctx.get(), reinterpret_cast<unsigned char const*>(signature.data()),
                   signature.size(), reinterpret_cast<unsigned char const*>(manifestBytes.data()),
                   manifestBytes.size())
                == 1;
        if (!ok)
        {
            throw artifactError(where + ": signature by key " + signer
                + " does not match its bytes (modified after signing); refusing it");
        }
        return;
    }
    throw artifactError(where + ": signed by key " + signer + ", which is not a trusted key");
}
} // namespace pomrt
