// The plugin-library part of the C API (pomrt.h): one load per library and process, shared with
// pomrt_create through the same table (plugin_loads.hpp).
#include <memory>

#include "capi_guard.hpp"
#include "plugin_loads.hpp"
#include "pomrt.h"

namespace pomrt
{
PluginLoader processPluginLoader()
{
#if POMRT_WITH_TENSORRT
    return tensorrtPluginLoader();
#else
    return dlopenPluginLoader();
#endif
}
} // namespace pomrt

struct pomrt_plugin
{
    pomrt::PluginLease lease;
    bool reused{false};
};

using namespace pomrt;
using namespace pomrt::capi;

extern "C" {

POMRT_API pomrt_status pomrt_plugin_load(const char* path, const char* sha256, pomrt_plugin** out)
{
    return guarded([&] {
        requireNonNull(out, "out");
        *out = nullptr;
        requireNonNull(path, "path");
        requireNonNull(sha256, "sha256");
        auto handle = std::make_unique<pomrt_plugin>();
        handle->lease = leasePlugin(path, sha256, processPluginLoader(), &handle->reused);
        *out = handle.release();
    });
}

POMRT_API int32_t pomrt_plugin_reused(const pomrt_plugin* plugin)
{
    return plugin != nullptr && plugin->reused ? 1 : 0;
}

POMRT_API void pomrt_plugin_release(pomrt_plugin* plugin)
{
    // The last release unloads (TensorRT deregisterLibrary or dlclose): nothing may escape into C.
    guarded([&] { delete plugin; });
}

POMRT_API int32_t pomrt_plugins_loaded(void)
{
    return loadedPluginCount();
}

} // extern "C"
