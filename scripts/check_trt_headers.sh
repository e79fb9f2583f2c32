#!/usr/bin/env bash
# Compile-check the PolyMixer TensorRT plugin and its CUDA kernels against a TensorRT header copy.
#
#   scripts/check_trt_headers.sh TRT_INCLUDE_DIR [ARCH]
#
# TRT_INCLUDE_DIR holds NvInferRuntime.h (e.g. the include/ folder of NVIDIA's open-source
# TensorRT repository, branch release/10.3 or main, kept outside this repository). ARCH is one
# SM number for the kernel object (default 90). Steps, each fatal on failure:
#   1. the plugin's C++ sources, full object compile with the host compiler, -Wall -Wextra
#      -Werror (TensorRT and CUDA headers are -isystem, so only our code must be warning-free);
#   2. the CUDA kernels with nvcc;
#   3. link libpomexport_plugins.so with --no-undefined (it must not need libnvinfer);
#   4. the library exports getCreators and setLoggerFinder (IPluginRegistry::loadLibrary);
#   5. pluginSelfTest (host only, no GPU, no libnvinfer) dlopens the library and drives the
#      creator and the plugin's build/runtime interfaces: names, fields, types, formats,
#      shape checks, workspace size, serialisation round trip, error paths.
# Nothing is written outside a temporary directory, except that with PLUGIN_OUT set the built
# library is copied to that path at the end (tests load it). Exit status 0 = all steps passed.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/NvInferRuntime.h" ]]; then
    echo "usage: $0 TRT_INCLUDE_DIR [ARCH]   (TRT_INCLUDE_DIR must contain NvInferRuntime.h)" >&2
    exit 2
fi
TRT_INCLUDE_DIR="$(cd "$1" && pwd)"
ARCH="${2:-90}"
PLUGIN_DIR="$(cd "$(dirname "$0")/../runtime/plugin" && pwd)"
NVCC="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC" ]]; then
    echo "nvcc not found (set NVCC or put the CUDA toolkit on PATH)" >&2
    exit 2
fi
# nvcc may be a wrapper script; ask it where its toolkit lives (or honour CUDA_HOME).
CUDA_HOME="${CUDA_HOME:-$("$NVCC" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)}"
CUDA_INCLUDE_DIR="$(cd "$CUDA_HOME/include" && pwd)"
CXX="${CXX:-g++}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

version() {
    local major minor patch
    major=$(grep -Eo 'define (NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) [0-9]+' "$TRT_INCLUDE_DIR/NvInferVersion.h" | head -1 | awk '{print $3}')
    minor=$(grep -Eo 'define (NV_TENSORRT_MINOR|TRT_MINOR_ENTERPRISE) [0-9]+' "$TRT_INCLUDE_DIR/NvInferVersion.h" | head -1 | awk '{print $3}')
    patch=$(grep -Eo 'define (NV_TENSORRT_PATCH|TRT_PATCH_ENTERPRISE) [0-9]+' "$TRT_INCLUDE_DIR/NvInferVersion.h" | head -1 | awk '{print $3}')
    echo "${major:-?}.${minor:-?}.${patch:-?}"
}
echo "TensorRT headers $(version) at $TRT_INCLUDE_DIR; $("$NVCC" --version | tail -1); $("$CXX" --version | head -1)"

CXXFLAGS=(-std=c++17 -O2 -fPIC -fvisibility=hidden -Wall -Wextra -Werror
    -isystem "$TRT_INCLUDE_DIR" -isystem "$CUDA_INCLUDE_DIR" -I "$PLUGIN_DIR")
for source in PolyMixerPlugin.cpp PolyMixerPluginCreator.cpp; do
    echo "[1/5] $CXX -c $source"
    "$CXX" "${CXXFLAGS[@]}" -c "$PLUGIN_DIR/$source" -o "$WORK/${source%.cpp}.o"
done

echo "[2/5] nvcc -c polyMixerKernel.cu (sm_$ARCH)"
"$NVCC" -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra -Werror all-warnings \
    -gencode "arch=compute_$ARCH,code=sm_$ARCH" -I "$PLUGIN_DIR" \
    -c "$PLUGIN_DIR/polyMixerKernel.cu" -o "$WORK/polyMixerKernel.o"

echo "[3/5] link libpomexport_plugins.so (--no-undefined, no libnvinfer)"
"$NVCC" -shared -Xlinker --no-undefined -o "$WORK/libpomexport_plugins.so" "$WORK"/*.o

echo "[4/5] exported entry points"
exports="$(nm -D --defined-only "$WORK/libpomexport_plugins.so")"
for symbol in getCreators setLoggerFinder; do
    if ! grep -qw "$symbol" <<<"$exports"; then
        echo "missing exported symbol: $symbol" >&2
        exit 1
    fi
done

echo "[5/5] pluginSelfTest (host-only checks of the creator and the plugin)"
"$CXX" "${CXXFLAGS[@]}" "$PLUGIN_DIR/pluginSelfTest.cpp" -o "$WORK/pluginSelfTest" -ldl
"$WORK/pluginSelfTest" "$WORK/libpomexport_plugins.so"
if [[ -n "${PLUGIN_OUT:-}" ]]; then
    cp "$WORK/libpomexport_plugins.so" "$PLUGIN_OUT"
fi
echo "OK: plugin + kernels compile, link and pass the self test against TensorRT $(version) headers"
