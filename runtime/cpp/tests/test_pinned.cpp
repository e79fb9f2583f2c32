// C++ unit test of the verified-bytes helpers (pinned.hpp) and of the plugin table loading
// exactly the bytes it verified (issue 22: time-of-check/time-of-use).
//
//   pomrt_test_pinned                 sealed copies: same bytes, cannot be written
//   pomrt_test_pinned LIB_A LIB_B     also: a loader that swaps LIB_A for LIB_B between the
//                                     check and the load still loads LIB_A's code (both
//                                     export `int buildTag()`, with different values)
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../src/plugin_loads.hpp"
#include "pomrt/error.hpp"
#include "pomrt/pinned.hpp"
#include "pomrt/sha256.hpp"

#include "check.hpp"

namespace fs = std::filesystem;
using namespace pomrt;

namespace
{
std::vector<uint8_t> slurp(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void testSealedCopy()
{
    std::vector<uint8_t> const bytes{'p', 'o', 'm', 0, 1, 2};
    SealedFile const sealed(bytes, "pomrt-test");
    CHECK(slurp(sealed.path()) == bytes);
    if (sealed.sealed())
    {
        int const fd = ::open(sealed.path().c_str(), O_WRONLY);
        bool const writable = fd >= 0 && ::write(fd, "x", 1) == 1;
        CHECK(!writable); // F_SEAL_WRITE: not even this process can change it
        if (fd >= 0)
        {
            ::close(fd);
        }
    }
    SealedFile const other(bytes, "pomrt-test");
    CHECK(other.path() != sealed.path());

    fs::path const file = fs::temp_directory_path() / ("pomrt-test-pinned-" + std::to_string(::getpid()));
    std::ofstream(file, std::ios::binary).write("abc", 3);
    CHECK(readVerifiedBytes(file, sha256Bytes("abc", 3), 16, "f") == (std::vector<uint8_t>{'a', 'b', 'c'}));
    bool refused = false;
    try
    {
        readVerifiedBytes(file, sha256Bytes("abd", 3), 16, "f");
    }
    catch (Error const& e)
    {
        refused = std::string(e.what()).find("sha256 mismatch") != std::string::npos;
    }
    CHECK(refused);
    refused = false;
    try
    {
        readVerifiedBytes(file, "", 2, "f");
    }
    catch (Error const& e)
    {
        refused = std::string(e.what()).find("limit 2") != std::string::npos;
    }
    CHECK(refused);
    fs::remove(file);

    fs::path where;
    {
        PrivateDirectory copy;
        where = copy.path();
        fs::path const data = copy.add("sub/model.onnx.data", bytes);
        CHECK(slurp(data.string()) == bytes);
        CHECK((fs::status(where).permissions() & (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);
        bool escaped = false;
        try
        {
            copy.add("../outside", bytes);
            escaped = true;
        }
        catch (Error const&)
        {
        }
        CHECK(!escaped);
    }
    CHECK(!fs::exists(where)); // removed with the object
}

//! The attacker's loader: swaps the verified file for another library, then loads the path it
//! was given; reports the loaded library's buildTag().
void testSwapAfterVerify(std::string const& libA, std::string const& libB)
{
    fs::path const target = fs::temp_directory_path() / ("pomrt-test-swap-" + std::to_string(::getpid()) + ".so");
    fs::copy_file(libA, target, fs::copy_options::overwrite_existing);
    std::string const shaA = sha256File(target);
    int tag = -1;
    PluginLoader loader;
    loader.load = [&](std::string const& path) {
        fs::path const tmp = target.string() + ".new";
        fs::copy_file(libB, tmp, fs::copy_options::overwrite_existing);
        fs::rename(tmp, target); // the swap, after the check, before the load
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr)
        {
            throw Error(POMRT_ERR_PLUGIN, std::string("dlopen: ") + dlerror());
        }
        auto const buildTag = reinterpret_cast<int (*)()>(dlsym(handle, "buildTag"));
        tag = buildTag != nullptr ? buildTag() : -2;
        return PluginHandle{handle, true};
    };
    loader.unload = [](void* handle) { dlclose(handle); };
    bool reused = true;
    PluginLease lease = leasePlugin(target.string(), shaA, loader, &reused);
    CHECK(!reused);
    CHECK(tag == 1); // libA's code ran, not the swapped-in libB (tag 2)
    CHECK(sha256File(target) != shaA);
    std::printf("pomrt_test_pinned: loaded buildTag %d after the file was swapped\n", tag);
    lease.reset();
    fs::remove(target);
}
} // namespace

int main(int argc, char** argv)
{
    try
    {
        testSealedCopy();
        if (argc == 3)
        {
            testSwapAfterVerify(argv[1], argv[2]);
        }
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return pomrt_test::checkSummary("pomrt_test_pinned");
}
