// Path safety and atomic writes for artifact directories.
#include "pomrt/paths.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include "pomrt/error.hpp"

namespace fs = std::filesystem;

namespace pomrt
{
namespace
{
bool isInside(fs::path const& resolvedRoot, fs::path const& resolved)
{
    // Component-wise prefix test: "/a/bc" is not inside "/a/b".
    auto r = resolvedRoot.begin();
    auto p = resolved.begin();
    for (; r != resolvedRoot.end(); ++r, ++p)
    {
        if (p == resolved.end() || *p != *r)
        {
            return false;
        }
    }
    return true;
}
} // namespace

fs::path safeMember(fs::path const& root, std::string const& name, std::string const& what)
{
    std::string posix = name;
    for (char& c : posix)
    {
        c = c == '\\' ? '/' : c; // a Windows-made manifest must not smuggle "..\\" past the check
    }
    fs::path const pure(posix);
    bool const driveLetter = posix.size() >= 2 && posix[1] == ':';
    bool dotDot = false;
    for (auto const& part : pure)
    {
        dotDot = dotDot || part == "..";
    }
    if (posix.empty() || pure.is_absolute() || posix[0] == '/' || driveLetter || dotDot)
    {
        throw artifactError(what + ": refusing path '" + name + "' (must stay inside " + root.string() + ")");
    }
    fs::path const candidate = root / pure;
    std::error_code ec;
    fs::path const resolvedRoot = fs::weakly_canonical(root, ec);
    fs::path const resolved = fs::weakly_canonical(candidate, ec);
    if (ec || !isInside(resolvedRoot, resolved))
    {
        throw artifactError(what + ": '" + name + "' leaves the artifact directory (via a symlink)");
    }
    return candidate;
}

void atomicWrite(fs::path const& path, std::string const& bytes)
{
    std::random_device rd;
    fs::path const tmp = path.parent_path() / ("." + path.filename().string() + "." + std::to_string(rd()) + ".tmp");
    int const fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
    {
        throw artifactError(path.string() + ": cannot create a temporary file beside it");
    }
    size_t written = 0;
    while (written < bytes.size())
    {
        ssize_t const n = ::write(fd, bytes.data() + written, bytes.size() - written);
        if (n <= 0)
        {
            break;
        }
        written += static_cast<size_t>(n);
    }
    bool const ok = written == bytes.size() && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
    {
        std::remove(tmp.c_str());
        throw artifactError(path.string() + ": write failed (disk full or read-only?)");
    }
}

} // namespace pomrt
