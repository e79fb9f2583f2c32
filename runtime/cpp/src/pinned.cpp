// Verified bytes and sealed copies of them (pinned.hpp).
#include "pomrt/pinned.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "pomrt/error.hpp"
#include "pomrt/sha256.hpp"

namespace fs = std::filesystem;

namespace pomrt
{
namespace
{

class Fd
{
public:
    explicit Fd(int fd)
        : mFd(fd)
    {
    }
    Fd(Fd const&) = delete;
    Fd& operator=(Fd const&) = delete;
    ~Fd()
    {
        if (mFd >= 0)
        {
            ::close(mFd);
        }
    }
    int get() const noexcept
    {
        return mFd;
    }

private:
    int mFd;
};

void writeAll(int fd, std::vector<uint8_t> const& bytes, std::string const& what)
{
    size_t done = 0;
    while (done < bytes.size())
    {
        ssize_t const n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR)
        {
            continue;
        }
        if (n <= 0)
        {
            throw artifactError(what + ": cannot write a private copy (" + std::strerror(errno) + ")");
        }
        done += static_cast<size_t>(n);
    }
}

std::string privateTempDir(std::string const& what)
{
    std::string dir = (fs::temp_directory_path() / "pomrt-verified-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) // mode 0700
    {
        throw artifactError(what + ": cannot create a private directory (" + std::strerror(errno) + ")");
    }
    return dir;
}

} // namespace

std::vector<uint8_t> readVerifiedBytes(
    fs::path const& path, std::string const& sha256, uintmax_t maxBytes, std::string const& what)
{
    Fd const fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat info{};
    if (fd.get() < 0 || ::fstat(fd.get(), &info) != 0)
    {
        throw artifactError(what + ": cannot open it (" + std::strerror(errno) + ")");
    }
    if (!S_ISREG(info.st_mode))
    {
        throw artifactError(what + ": not a regular file");
    }
    if (static_cast<uintmax_t>(info.st_size) > maxBytes)
    {
        throw artifactError(what + ": " + std::to_string(info.st_size) + " bytes (limit " + std::to_string(maxBytes) + ")");
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(info.st_size) + 1);
    size_t got = 0;
    while (true) // to EOF: a file that grew since fstat is refused, not truncated
    {
        ssize_t const n = ::read(fd.get(), bytes.data() + got, bytes.size() - got);
        if (n < 0 && errno == EINTR)
        {
            continue;
        }
        if (n < 0)
        {
            throw artifactError(what + ": read error (" + std::strerror(errno) + ")");
        }
        if (n == 0)
        {
            break;
        }
        got += static_cast<size_t>(n);
        if (got == bytes.size())
        {
            throw artifactError(what + ": grew while being read; refusing it");
        }
    }
    bytes.resize(got);
    if (!sha256.empty())
    {
        std::string const actual = sha256Bytes(bytes.data(), bytes.size());
        if (actual != sha256)
        {
            throw artifactError(what + ": sha256 mismatch (expected " + sha256.substr(0, 12) + "..., file "
                + actual.substr(0, 12) + "...); the file was modified or is corrupt");
        }
    }
    return bytes;
}

SealedFile::SealedFile(std::vector<uint8_t> const& bytes, std::string const& name)
{
#ifdef MFD_ALLOW_SEALING
    int const fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0)
    {
        mFd = fd;
        try
        {
            writeAll(fd, bytes, name);
        }
        catch (...)
        {
            ::close(fd);
            throw;
        }
        int const seals = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
        if (::fcntl(fd, F_ADD_SEALS, seals) != 0)
        {
            ::close(fd);
            throw artifactError(name + ": cannot seal the in-memory copy (" + std::strerror(errno) + ")");
        }
        // The fd stays open while the object lives, so no other SealedFile gets this path.
        mPath = "/proc/self/fd/" + std::to_string(fd);
        return;
    }
#endif
    // No memfd: a private directory only this user can enter, a file only readable.
    std::string const dir = privateTempDir(name);
    mDir = dir;
    mPath = (fs::path(dir) / fs::path(name).filename()).string();
    Fd const out(::open(mPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0500));
    if (out.get() < 0)
    {
        std::error_code ignored;
        fs::remove_all(mDir, ignored);
        throw artifactError(name + ": cannot write a private copy (" + std::strerror(errno) + ")");
    }
    try
    {
        writeAll(out.get(), bytes, name);
    }
    catch (...)
    {
        std::error_code ignored;
        fs::remove_all(mDir, ignored);
        throw;
    }
}

SealedFile::~SealedFile()
{
    if (mFd >= 0)
    {
        ::close(mFd);
    }
    if (!mDir.empty())
    {
        std::error_code ignored;
        fs::remove_all(mDir, ignored);
    }
}

PrivateDirectory::PrivateDirectory()
    : mDir(privateTempDir("verified copy"))
{
}

PrivateDirectory::~PrivateDirectory()
{
    std::error_code ignored;
    fs::remove_all(mDir, ignored);
}

fs::path PrivateDirectory::add(std::string const& name, std::vector<uint8_t> const& bytes)
{
    fs::path const rel = fs::path(name).lexically_normal();
    if (rel.empty() || rel.is_absolute() || *rel.begin() == "..")
    {
        throw artifactError(name + ": not a relative path inside the copy");
    }
    fs::path const target = mDir / rel;
    fs::create_directories(target.parent_path());
    Fd const out(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400));
    if (out.get() < 0)
    {
        throw artifactError(name + ": cannot write a private copy (" + std::strerror(errno) + ")");
    }
    writeAll(out.get(), bytes, name);
    return target;
}

} // namespace pomrt
