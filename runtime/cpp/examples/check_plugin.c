/* Load the PolyMixer plugin library the way pomrt_create does, and say whether it worked.
 *
 *   check_plugin LIBRARY.so SHA256
 *
 * In a TensorRT build this is TensorRT's IPluginRegistry::loadLibrary followed by a look-up of
 * the PolyMixer v1 creator in namespace "pomexport"; without TensorRT, a dlopen and a check of
 * the getCreators entry point. The library is loaded twice to show the second load is shared.
 * Exit status 0 when it loaded. The bundle's build.sh runs it before trtexec, because
 * `trtexec --dynamicPlugins` ignores a failed load and only reports "Plugin not found" later. */
#include <stdio.h>

#include "pomrt.h"

int main(int argc, char** argv)
{
    pomrt_plugin* first = NULL;
    pomrt_plugin* second = NULL;
    int ok;
    if (argc != 3)
    {
        fprintf(stderr, "usage: %s LIBRARY.so SHA256\n", argv[0]);
        return 2;
    }
    if (pomrt_plugin_load(argv[1], argv[2], &first) != POMRT_OK)
    {
        fprintf(stderr, "check_plugin: %s\n", pomrt_last_error());
        return 1;
    }
    ok = pomrt_plugin_load(argv[1], argv[2], &second) == POMRT_OK && pomrt_plugin_reused(second) == 1
        && pomrt_plugins_loaded() == 1;
    printf("check_plugin: %s loaded (%s); a second load %s\n", argv[1],
        pomrt_has_tensorrt() ? "TensorRT plugin registry: PolyMixer v1, namespace pomexport" : "dlopen, no TensorRT",
        ok ? "shares the first" : "did NOT share the first");
    pomrt_plugin_release(second);
    pomrt_plugin_release(first);
    return ok ? 0 : 1;
}
