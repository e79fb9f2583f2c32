#!/usr/bin/env bash
# Build the PolyMixer plugin library (libpomexport_plugins.so) and the C-API kernel library.
#
#   scripts/build_plugin.sh TRT_INCLUDE_DIR [BUILD_DIR] [CUDA_ARCHS]
#
# BUILD_DIR defaults to build/plugin; CUDA_ARCHS to "87;90;110" (Orin, H100, Thor). Pass an
# empty TRT_INCLUDE_DIR ("") to build only libpomexport_polymixer.so (no TensorRT needed).
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 TRT_INCLUDE_DIR [BUILD_DIR] [CUDA_ARCHS]" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TRT_INCLUDE_DIR="$1"
BUILD_DIR="${2:-$ROOT/build/plugin}"
ARCHS="${3:-87;90;110}"
WITH_PLUGIN=ON
if [[ -z "$TRT_INCLUDE_DIR" ]]; then
    WITH_PLUGIN=OFF
fi

cmake -S "$ROOT/runtime/plugin" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" -DTENSORRT_INCLUDE_DIR="$TRT_INCLUDE_DIR" \
    -DPOMEXPORT_BUILD_TRT_PLUGIN="$WITH_PLUGIN"
cmake --build "$BUILD_DIR" -j "$(nproc)"
ls -1 "$BUILD_DIR"/lib*.so
