#!/usr/bin/env bash
# Compile-check the C++ runtime (runtime/cpp, library pomrt) against a TensorRT header copy.
#
#   scripts/check_cpp_runtime.sh TRT_INCLUDE_DIR [ONNX_PARSER_INCLUDE_DIR] [ARCH...]
#
# TRT_INCLUDE_DIR holds NvInfer.h (e.g. the include/ folder of NVIDIA's open-source TensorRT
# repository, branch release/10.3 or main, kept outside this repository). NvOnnxParser.h is
# looked up there, else in ONNX_PARSER_INCLUDE_DIR (release/10.x keeps it in the onnx-tensorrt
# submodule). ARCH: SM numbers for the frame-loop kernels (default 87 90 110). Steps, each
# fatal on failure:
#   1. the TensorRT sources (engine, generator, decoder stage, C API runtime and plugin parts) and the examples: full object
#      compile, -Wall -Wextra -Werror, deprecated TensorRT declarations are errors too;
#   2. the frame-loop kernels with nvcc for every ARCH;
#   3. link everything with the CPU sources into libpomrt.so with TensorRT symbols left
#      undefined (no libnvinfer here), and check the C API symbols are exported.
# Nothing is written outside a temporary directory. Exit status 0 = all steps passed.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/NvInfer.h" ]]; then
    echo "usage: $0 TRT_INCLUDE_DIR [ONNX_PARSER_INCLUDE_DIR] [ARCH...]   (TRT_INCLUDE_DIR must contain NvInfer.h)" >&2
    exit 2
fi
TRT_INCLUDE_DIR="$(cd "$1" && pwd)"
shift
PARSER_INCLUDE_DIR="$TRT_INCLUDE_DIR"
if [[ $# -gt 0 && -d "$1" ]]; then
    PARSER_INCLUDE_DIR="$(cd "$1" && pwd)"
    shift
fi
if [[ ! -f "$PARSER_INCLUDE_DIR/NvOnnxParser.h" ]]; then
    echo "NvOnnxParser.h is neither in $TRT_INCLUDE_DIR nor in a given ONNX_PARSER_INCLUDE_DIR" >&2
    exit 2
fi
ARCHS=("${@:-87 90 110}")
read -r -a ARCHS <<<"${ARCHS[*]}"
ROOT="$(cd "$(dirname "$0")/../runtime/cpp" && pwd)"
NVCC="${NVCC:-$(command -v nvcc || true)}"
if [[ -z "$NVCC" ]]; then
    echo "nvcc not found (set NVCC or put the CUDA toolkit on PATH)" >&2
    exit 2
fi
CUDA_HOME="${CUDA_HOME:-$("$NVCC" --dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)}"
CUDA_INCLUDE_DIR="$(cd "$CUDA_HOME/include" && pwd)"
CXX="${CXX:-g++}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

version() {
    local v=()
    for part in MAJOR MINOR PATCH; do
        v+=("$(grep -Eo "define (NV_TENSORRT_$part|TRT_${part}_ENTERPRISE) [0-9]+" "$TRT_INCLUDE_DIR/NvInferVersion.h" | head -1 | awk '{print $3}')")
    done
    echo "${v[0]:-?}.${v[1]:-?}.${v[2]:-?}"
}
echo "TensorRT headers $(version) at $TRT_INCLUDE_DIR (ONNX parser header: $PARSER_INCLUDE_DIR);" \
    "$("$NVCC" --version | tail -1); $("$CXX" --version | head -1)"

CXXFLAGS=(-std=c++17 -O2 -fPIC -fvisibility=hidden -Wall -Wextra -Wpedantic -Werror -Werror=deprecated-declarations
    -isystem "$TRT_INCLUDE_DIR" -isystem "$PARSER_INCLUDE_DIR" -isystem "$CUDA_INCLUDE_DIR" -I "$ROOT/include")
for source in src/engine.cpp src/generator.cpp src/generator_rgb.cpp src/trt_decoder.cpp src/capi_runtime.cpp src/capi_plugin.cpp; do
    echo "[1/3] $CXX -c $source (POMRT_WITH_TENSORRT=1)"
    "$CXX" "${CXXFLAGS[@]}" -DPOMRT_WITH_TENSORRT=1 -c "$ROOT/$source" -o "$WORK/$(basename "${source%.cpp}").o"
done
echo "[1/3] $CXX -c examples/generate_y4m.cpp, cc -c examples/check_plugin.c"
"$CXX" "${CXXFLAGS[@]}" -c "$ROOT/examples/generate_y4m.cpp" -o "$WORK/generate_y4m.o.example"
"${CC:-gcc}" -std=c99 -Wall -Wextra -Wpedantic -Werror -I "$ROOT/include" -c "$ROOT/examples/check_plugin.c" \
    -o "$WORK/check_plugin.o.example"

GENCODE=()
for arch in "${ARCHS[@]}"; do
    GENCODE+=(-gencode "arch=compute_$arch,code=sm_$arch")
done
echo "[2/3] nvcc -c src/kernels.cu (sm ${ARCHS[*]})"
"$NVCC" -std=c++17 -O3 -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra -Werror all-warnings "${GENCODE[@]}" \
    -I "$ROOT/include" -c "$ROOT/src/kernels.cu" -o "$WORK/kernels.o"

echo "[3/3] link libpomrt.so (TensorRT symbols unresolved: headers only here)"
for source in capi capi_decoder decoder decoder_engines manifest paths plugin_loads schedule sha256; do
    "$CXX" "${CXXFLAGS[@]}" -DPOMRT_WITH_TENSORRT=1 -c "$ROOT/src/$source.cpp" -o "$WORK/$source.o"
done
"$NVCC" -shared -o "$WORK/libpomrt.so" "$WORK"/*.o -lcrypto -ldl
exports="$(nm -D --defined-only "$WORK/libpomrt.so")"
for symbol in pomrt_create pomrt_next_frame pomrt_reset_stream pomrt_destroy pomrt_last_error pomrt_verify_artifact pomrt_schedule \
    pomrt_plugin_load pomrt_plugin_release pomrt_artifact_decoder pomrt_artifact_decoder_engine pomrt_decode_info pomrt_next_rgb; do
    if ! grep -qw "$symbol" <<<"$exports"; then
        echo "missing exported symbol: $symbol" >&2
        exit 1
    fi
done
echo "OK: pomrt (engine, frame loop, C API) compiles against TensorRT $(version) headers"
