#!/usr/bin/env bash
# First contact with a real TensorRT: run this on the first machine that has TensorRT (10.x or
# 11.x, with its Python bindings) and a GPU, from a checkout with pomexport installed.
#
#   scripts/trt_first_contact.sh [PLUGIN_LIBRARY.so]
#
# In about a minute (plus the plugin compile when no library is given):
#   1. builds libpomexport_plugins.so (scripts/build_plugin.sh, for this GPU's SM) unless given;
#   2. checks the library with pomrt's loader when libpomrt was built with TensorRT
#      (build/pomrt/check_plugin; skipped otherwise), then loads it into TensorRT's plugin
#      registry from Python and checks the creators: exactly one added, PolyMixer v1 in
#      namespace pomexport, no (name, version, namespace) registered twice;
#   3. exports the bundled model at fp16 with both ONNX flavors, builds an engine from the
#      plugin flavor and one from the portable flavor (TF32 off), generates 16 frames with each
#      and with ONNX Runtime on the CPU, and compares them (PSNR of the decoded frames against
#      the artifact's fp16 gate);
#   4. prints ONE summary line on stdout ("first contact PASS: ..." or "first contact FAIL: ...");
#      the details go to stderr and to build/first-contact/.
# Environment: TENSORRT_ROOT (TensorRT prefix when its headers are not in system paths),
# FRAMES (default 16), STEPS (default 8), OUT (default build/first-contact).
# Exit status 0 = every check passed, 1 = a check failed, 2 = this machine cannot run it.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
OUT="${OUT:-build/first-contact}"

say() { printf '[first-contact] %s\n' "$*" >&2; }
cannot() {
    printf '[first-contact] cannot run here: %s\n' "$*" >&2
    exit 2
}

"$PYTHON" -c "import tensorrt" 2>/dev/null ||
    cannot "the TensorRT Python bindings are not importable (pip install tensorrt, or JetPack's python3-libnvinfer)"
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" ||
    cannot "no CUDA GPU is visible to torch (TensorRT engines are built on the GPU)"
"$PYTHON" -c "import pomexport" 2>/dev/null || cannot "pomexport is not installed (pip install -e '.[onnx]')"

library="${1:-}"
if [[ -z "$library" ]]; then
    include=""
    for dir in "${TENSORRT_ROOT:-/usr}/include" /usr/include/aarch64-linux-gnu /usr/include/x86_64-linux-gnu; do
        if [[ -f "$dir/NvInferRuntime.h" ]]; then
            include="$dir"
            break
        fi
    done
    [[ -n "$include" ]] || cannot "NvInferRuntime.h not found: set TENSORRT_ROOT, or pass a built PLUGIN_LIBRARY.so"
    sm="$("$PYTHON" -c "import torch; p = torch.cuda.get_device_properties(0); print(p.major * 10 + p.minor)")"
    say "building the plugin for sm_$sm against $include"
    scripts/build_plugin.sh "$include" build/first-contact-plugin "$sm" >&2
    library=build/first-contact-plugin/libpomexport_plugins.so
fi
[[ -f "$library" ]] || cannot "$library: no such file"

if [[ -x build/pomrt/check_plugin ]]; then
    say "pomrt's loader (TensorRT registry when libpomrt was built with TensorRT):"
    build/pomrt/check_plugin "$library" "$(sha256sum "$library" | cut -d' ' -f1)" >&2 ||
        say "check_plugin refused the library (reason above); the Python check below says more"
fi

exec "$PYTHON" -m pomexport.runtime.measure.first_contact "$library" --out "$OUT" \
    --frames "${FRAMES:-16}" --steps "${STEPS:-8}"
