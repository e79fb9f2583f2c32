// The process-wide table of loaded plugin libraries (plugin_loads.hpp).
#include "plugin_loads.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <utility>

#include "pomrt/error.hpp"
#include "pomrt/pinned.hpp"
#include "pomrt/sha256.hpp"

namespace pomrt
{
namespace
{

struct Registry
{
    // Recursive: a lease destroyed while the table is locked (a failed insert) unloads under it.
    std::recursive_mutex mutex;
    std::map<std::string, std::weak_ptr<LoadedPlugin const>> bySha256;
};

Registry& registry()
{
    // Never destroyed: leases held by objects that outlive static destruction still unload.
    static auto* sRegistry = new Registry();
    return *sRegistry;
}

std::string shortHash(std::string const& sha256)
{
    return sha256.substr(0, 12) + "...";
}

//! The live entries (expired ones dropped); call with the mutex held.
std::map<std::string, PluginLease> liveEntries(Registry& table)
{
    std::map<std::string, PluginLease> live;
    for (auto it = table.bySha256.begin(); it != table.bySha256.end();)
    {
        if (PluginLease plugin = it->second.lock())
        {
            live.emplace(it->first, std::move(plugin));
            ++it;
        }
        else
        {
            it = table.bySha256.erase(it);
        }
    }
    return live;
}

//! Refuse a second, different plugin library: it would register PolyMixer v1 (pomexport) again,
//! which TensorRT's loadLibrary answers with nullptr and nothing else.
void refuseOtherBuild(std::map<std::string, PluginLease> const& live, std::string const& path,
    std::string const& canonical, std::string const& sha256)
{
    for (auto const& [otherSha, plugin] : live)
    {
        if (plugin->canonicalPath() == canonical)
        {
            throw Error(POMRT_ERR_PLUGIN,
                path + ": this file was loaded earlier in this process with sha256 " + shortHash(otherSha)
                    + " and now has " + shortHash(sha256)
                    + "; a process cannot load a second build of the plugin library (restart it)");
        }
    }
    if (!live.empty())
    {
        auto const& other = *live.begin()->second;
        throw Error(POMRT_ERR_PLUGIN,
            path + " (sha256 " + shortHash(sha256) + "): another build of the plugin library is loaded in this process ("
                + other.path() + ", sha256 " + shortHash(other.sha256())
                + "); TensorRT registers each plugin (name, version, namespace) once per process, so both cannot be "
                  "loaded: release every runtime using the other one first");
    }
}

} // namespace

LoadedPlugin::LoadedPlugin(std::string path, std::string canonicalPath, std::string sha256, PluginHandle handle,
    std::function<void(void*)> unload, std::shared_ptr<SealedFile const> sealed)
    : mPath(std::move(path))
    , mCanonicalPath(std::move(canonicalPath))
    , mSha256(std::move(sha256))
    , mHandle(handle)
    , mUnload(std::move(unload))
    , mSealed(std::move(sealed))
{
}

LoadedPlugin::~LoadedPlugin()
{
    if (mHandle.owned && mHandle.handle != nullptr && mUnload)
    {
        // Under the table's lock: a new lease of the same library must not load it while the
        // registry still holds its creators.
        std::lock_guard<std::recursive_mutex> lock(registry().mutex);
        mUnload(mHandle.handle);
    }
}

namespace
{

//! The largest plugin library read into memory.
constexpr uintmax_t kMaxLibraryBytes = uintmax_t{1} << 30;

//! A sealed copy of `bytes` whose path no library of this process is loaded from yet: dlopen
//! matches an already loaded object by name, so a path reused after an incomplete unload
//! would return the old library instead of these bytes.
std::unique_ptr<SealedFile> unusedSealedCopy(std::vector<uint8_t> const& bytes, std::string const& name)
{
    std::vector<std::unique_ptr<SealedFile>> taken; // kept open: the next copy gets another path
    for (int32_t attempt = 0; attempt < 16; ++attempt)
    {
        auto copy = std::make_unique<SealedFile>(bytes, name);
        void* existing = dlopen(copy->path().c_str(), RTLD_LAZY | RTLD_NOLOAD);
        if (existing == nullptr)
        {
            return copy;
        }
        dlclose(existing);
        taken.push_back(std::move(copy));
    }
    throw Error(POMRT_ERR_PLUGIN, name + ": no unused path for a sealed copy of the library");
}

} // namespace

PluginLease leasePlugin(std::string const& path, std::string const& sha256, PluginLoader const& loader, bool* reused)
{
    // Read once, hash those bytes, and load exactly them (a sealed in-memory copy): a library
    // is code, and the file at `path` may be swapped between the check and dlopen.
    std::vector<uint8_t> bytes;
    try
    {
        bytes = readVerifiedBytes(path, std::string(), kMaxLibraryBytes, path);
    }
    catch (Error const& e)
    {
        throw Error(POMRT_ERR_PLUGIN, e.what());
    }
    std::string const actual = sha256Bytes(bytes.data(), bytes.size());
    if (actual != sha256)
    {
        throw Error(POMRT_ERR_PLUGIN,
            path + ": sha256 " + shortHash(actual) + " does not match the expected " + shortHash(sha256)
                + "; refusing to load it");
    }
    std::error_code ignored;
    std::string const canonical = std::filesystem::weakly_canonical(path, ignored).string();
    Registry& table = registry();
    std::lock_guard<std::recursive_mutex> lock(table.mutex);
    std::map<std::string, PluginLease> const live = liveEntries(table);
    if (auto found = live.find(sha256); found != live.end())
    {
        if (reused != nullptr)
        {
            *reused = true;
        }
        return found->second;
    }
    refuseOtherBuild(live, path, canonical, sha256);
    std::shared_ptr<SealedFile> sealed;
    try
    {
        sealed = unusedSealedCopy(bytes, std::string(kSealedPrefix) + std::filesystem::path(path).filename().string());
    }
    catch (Error const& e)
    {
        throw Error(POMRT_ERR_PLUGIN, e.what());
    }
    PluginHandle handle;
    try
    {
        handle = loader.load(sealed->path());
    }
    catch (Error const& e)
    {
        // Messages name the file the caller gave, not the sealed copy's /proc/self/fd path.
        std::string message = e.what();
        for (size_t at = message.find(sealed->path()); at != std::string::npos;
             at = message.find(sealed->path(), at + path.size()))
        {
            message.replace(at, sealed->path().size(), path);
        }
        throw Error(e.status(), message);
    }
    auto plugin = std::make_shared<LoadedPlugin const>(path, canonical, sha256, handle, loader.unload, sealed);
    table.bySha256[sha256] = plugin;
    if (reused != nullptr)
    {
        *reused = false;
    }
    return plugin;
}

int32_t loadedPluginCount()
{
    Registry& table = registry();
    std::lock_guard<std::recursive_mutex> lock(table.mutex);
    return static_cast<int32_t>(liveEntries(table).size());
}

PluginLoader dlopenPluginLoader()
{
    PluginLoader loader;
    loader.load = [](std::string const& path) {
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr)
        {
            char const* why = dlerror();
            throw Error(POMRT_ERR_PLUGIN, path + ": dlopen failed: " + (why != nullptr ? why : "unknown error"));
        }
        // What IPluginRegistry::loadLibrary looks up (getPluginCreators: the older V2 name).
        if (dlsym(handle, "getCreators") == nullptr && dlsym(handle, "getPluginCreators") == nullptr)
        {
            dlclose(handle);
            throw Error(POMRT_ERR_PLUGIN,
                path + ": not a TensorRT plugin library (it exports neither getCreators nor getPluginCreators)");
        }
        return PluginHandle{handle, true};
    };
    loader.unload = [](void* handle) { dlclose(handle); };
    return loader;
}

} // namespace pomrt
