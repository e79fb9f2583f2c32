// The PolyMixer plugin libraries this process loaded through pomrt: each one once, matched by
// canonical path and by sha256, shared by every runtime and C API caller of the process, and
// released with its last user. TensorRT's IPluginRegistry::loadLibrary returns nullptr for a
// library whose creators are already registered, so a second load of the same library (a second
// runtime, or the C API next to a runtime) must reuse the first instead of loading again.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace pomrt
{

class SealedFile;

//! The name of the sealed copy a library is loaded from (in /proc/self/maps: "/memfd:" + it).
inline constexpr char const* kSealedPrefix = "pomrt-verified:";

//! What loading a library gave: the loader's handle, and whether pomrt owns it (false: another
//! loader of this process had already registered the creators, e.g. Python's tensorrt; pomrt
//! then uses that registration and never deregisters it).
struct PluginHandle
{
    void* handle{nullptr};
    bool owned{true};
};

//! How a library enters the process (TensorRT's plugin registry, or dlopen) and leaves it.
struct PluginLoader
{
    std::function<PluginHandle(std::string const& path)> load; //!< throws Error(POMRT_ERR_PLUGIN)
    std::function<void(void*)> unload;                         //!< called for owned handles only
};

//! One loaded library; the last lease to end releases it.
class LoadedPlugin
{
public:
    LoadedPlugin(std::string path, std::string canonicalPath, std::string sha256, PluginHandle handle,
        std::function<void(void*)> unload, std::shared_ptr<SealedFile const> sealed = nullptr);
    LoadedPlugin(LoadedPlugin const&) = delete;
    LoadedPlugin& operator=(LoadedPlugin const&) = delete;
    ~LoadedPlugin();

    std::string const& path() const noexcept
    {
        return mPath;
    }
    std::string const& canonicalPath() const noexcept
    {
        return mCanonicalPath;
    }
    std::string const& sha256() const noexcept
    {
        return mSha256;
    }
    void* handle() const noexcept
    {
        return mHandle.handle;
    }
    bool owned() const noexcept
    {
        return mHandle.owned;
    }

private:
    std::string mPath;
    std::string mCanonicalPath;
    std::string mSha256;
    PluginHandle mHandle;
    std::function<void(void*)> mUnload;
    std::shared_ptr<SealedFile const> mSealed; //!< the bytes loaded; closed after the unload
};

using PluginLease = std::shared_ptr<LoadedPlugin const>;

//! Read `path` once and check those bytes have `sha256` (a library is code: it must be the one
//! named), then return this process's load of it, made from a sealed copy of the verified bytes
//! (pinned.hpp), never from `path` again: the load already made for the same sha256 (at any path), or a new one
//! through `loader`. Throws Error(POMRT_ERR_PLUGIN) when the hash differs, when a different
//! build of the plugin library is loaded (from another path, or the same path since replaced),
//! or when the loader fails. `reused` (optional) is set to whether an earlier load was shared.
PluginLease leasePlugin(
    std::string const& path, std::string const& sha256, PluginLoader const& loader, bool* reused = nullptr);

//! Libraries loaded through leasePlugin and still leased.
int32_t loadedPluginCount();

//! The loader of builds without TensorRT: dlopen (RTLD_NOW | RTLD_LOCAL) and check the library
//! exports getCreators, IPluginRegistry::loadLibrary's entry point; registers nothing.
PluginLoader dlopenPluginLoader();

//! The loader of TensorRT builds (engine.cpp): IPluginRegistry::loadLibrary, then a check that
//! PolyMixer v1 is registered in namespace "pomexport"; deregisterLibrary on release.
PluginLoader tensorrtPluginLoader();

//! The loader of this build: TensorRT's registry when built with TensorRT, else dlopen.
PluginLoader processPluginLoader();

} // namespace pomrt
