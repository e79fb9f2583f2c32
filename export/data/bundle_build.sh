#!/usr/bin/env bash
# Build this pomexport bundle ON THE DEVICE: verify every file, compile the PolyMixer plugin
# and the C++ runtime, check TensorRT loads the plugin, build the TensorRT engine with trtexec
# (TF32 off) and, when the artifact has a decoder stage, one engine per decoder graph, record
# plugin and engines in artifact/device.json (artifact/manifest.json stays as shipped, so its
# signature holds). See README.md.
#
#   ./build.sh
#
# Environment (all optional):
#   TENSORRT_ROOT   TensorRT prefix when not in system paths (JetPack: system paths)
#   TRTEXEC         trtexec binary (default: on PATH, else /usr/src/tensorrt/bin/trtexec)
#   WORKSPACE_MIB   builder workspace cap in MiB (default: the target's; 0 = no cap)
#   JOBS            parallel compile jobs (default: nproc; lower it on an Orin Nano)
#   SKIP_ENGINE=1   compile only (no step or decoder engine); the C++ runtime then builds the
#                   step engine on its first run
#   POMEXPORT_TRUSTED_KEYS  PEM Ed25519 public keys (':'-separated): bundle.json must be signed
#                   by one; the runtimes then also want device.json signed by one, so
#   POMEXPORT_DEVICE_KEY    this device's PEM Ed25519 private key (its public key among the
#                   trusted ones) signs artifact/device.json (device.sig)
set -euo pipefail

# @CONFIG@

log() { printf '[build.sh] %s\n' "$*" >&2; }
die() {
    printf '[build.sh] error: %s\n' "$*" >&2
    exit 1
}

# With POMEXPORT_TRUSTED_KEYS (PEM Ed25519 public keys, ':'-separated, as for the runtimes):
# bundle.json must carry a valid bundle.sig by one of them, and SHA256SUMS must be the file
# bundle.json lists, so every file checked below is the one the key holder signed. (A
# modified build.sh skips this check: verify the bundle before running it, e.g.
# `pomexport verify-bundle --trusted-key KEY`.)
verify_signature() {
    if [[ -z "${POMEXPORT_TRUSTED_KEYS:-}" ]]; then
        log "no trusted keys (POMEXPORT_TRUSTED_KEYS): checking integrity only, not authenticity"
        return 0
    fi
    command -v openssl >/dev/null || die "openssl not found: cannot check bundle.sig"
    command -v python3 >/dev/null || die "python3 not found: cannot check bundle.sig"
    [[ -f bundle.sig ]] || die "bundle.json: unsigned, and trusted keys are configured; refusing it"
    mkdir -p build
    python3 - <<'PY' || die "bundle.sig is not a signature, or SHA256SUMS is not the file bundle.json lists"
import base64, hashlib, json
sig = json.load(open("bundle.sig"))
assert sig.get("format") == "pomexport-signature" and sig.get("algorithm") == "ed25519"
open("build/bundle.sig.bin", "wb").write(base64.b64decode(sig["signature"], validate=True))
listed = json.load(open("bundle.json"))["files"]["SHA256SUMS"]["sha256"]
assert hashlib.sha256(open("SHA256SUMS", "rb").read()).hexdigest() == listed
PY
    local key
    local -a keys
    IFS=':' read -ra keys <<<"$POMEXPORT_TRUSTED_KEYS"
    for key in "${keys[@]}"; do
        [[ -n "$key" ]] || continue
        if openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in bundle.json \
            -sigfile build/bundle.sig.bin >/dev/null 2>&1; then
            log "bundle.json is signed by the trusted key $key"
            return 0
        fi
    done
    die "bundle.json: not signed by a trusted key (POMEXPORT_TRUSTED_KEYS); refusing it"
}

verify_files() {
    command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"
    verify_signature
    # A rebuild: drop what a previous run added (bundles ship none of it; the manifest is
    # never written, so nothing else needs putting back).
    rm -rf artifact/plugins artifact/engines artifact/timing.cache artifact/device.json artifact/device.sig
    rm -f artifact/decoder/*.plan # decoder engines (the decoder's graphs are shipped: kept)
    log "verifying the sha256 of every file (SHA256SUMS, itself hashed in bundle.json)"
    sha256sum --quiet --strict -c SHA256SUMS ||
        die "a file does not match SHA256SUMS: the bundle was modified or is corrupt"
}

find_trt_include() {
    local dir
    for dir in "${TENSORRT_ROOT:-/usr}/include" /usr/include/aarch64-linux-gnu \
        /usr/include/x86_64-linux-gnu /usr/include; do
        if [[ -f "$dir/NvInferRuntime.h" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    die "NvInferRuntime.h not found: install TensorRT (JetPack: nvidia-tensorrt-dev) or set TENSORRT_ROOT"
}

build_plugin() {
    log "compiling the PolyMixer plugin for sm ${CUDA_ARCHS}"
    cmake -S src/plugin -B build/plugin -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DTENSORRT_INCLUDE_DIR="$1"
    cmake --build build/plugin -j "$JOBS"
}

build_runtime() {
    log "compiling the C++ runtime (libpomrt.so, generate_y4m)"
    cmake -S src/cpp -B build/pomrt -DCMAKE_BUILD_TYPE=Release -DPOMRT_WITH_TENSORRT=ON \
        -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS" -DTENSORRT_ROOT="${TENSORRT_ROOT:-/usr}"
    cmake --build build/pomrt -j "$JOBS"
    ctest --test-dir build/pomrt --output-on-failure
}

# trtexec --dynamicPlugins ignores a failed IPluginRegistry::loadLibrary and only reports
# "Plugin not found" while parsing: load the library through pomrt first (TensorRT's registry,
# then a check that PolyMixer v1 is registered in namespace pomexport), and stop with its reason.
check_plugin() {
    local library=build/plugin/libpomexport_plugins.so sha
    [[ -x build/pomrt/check_plugin ]] || die "build/pomrt/check_plugin missing (the C++ runtime build failed?)"
    sha="$(sha256sum "$library" | cut -d' ' -f1)"
    log "checking that TensorRT loads $library and registers PolyMixer"
    build/pomrt/check_plugin "$library" "$sha" ||
        die "TensorRT cannot load $library (reason above): no engine can use the PolyMixer plugin"
}

build_engine() {
    local trtexec="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
    [[ -x "$trtexec" ]] || die "trtexec not found (set TRTEXEC, or SKIP_ENGINE=1)"
    local cap=()
    if [[ "${WORKSPACE_MIB}" -gt 0 ]]; then
        cap=("--memPoolSize=workspace:${WORKSPACE_MIB}")
    fi
    log "building the engine from artifact/${ENGINE_ONNX} (workspace cap: ${WORKSPACE_MIB} MiB)"
    # --noTF32: TF32 is on by default and would run the graph's fp32 GEMMs with 10-bit mantissas.
    "$trtexec" --onnx="artifact/${ENGINE_ONNX}" --stronglyTyped --noTF32 \
        --dynamicPlugins=build/plugin/libpomexport_plugins.so \
        --minShapes="$MIN_SHAPES" --optShapes="$OPT_SHAPES" --maxShapes="$MAX_SHAPES" \
        "${cap[@]}" --timingCacheFile=build/timing.cache --saveEngine=build/model.plan \
        --skipInference 2>&1 | tee build/trtexec.log
}

# The decoder stage's graphs (DECODER_ONNX: decoder/<role>.onnx, none without a decoder), one
# engine each: strongly typed, TF32 off, like the step's; static shapes (batch 1), so no
# profile; no plugin (standard ops only); the step build's workspace cap and timing cache.
build_decoder_engines() {
    local -a graphs
    read -ra graphs <<<"${DECODER_ONNX:-}"
    [[ ${#graphs[@]} -gt 0 ]] || return 0
    local trtexec="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"
    [[ -x "$trtexec" ]] || die "trtexec not found (set TRTEXEC, or SKIP_ENGINE=1)"
    local cap=() onnx role
    if [[ "${WORKSPACE_MIB}" -gt 0 ]]; then
        cap=("--memPoolSize=workspace:${WORKSPACE_MIB}")
    fi
    for onnx in "${graphs[@]}"; do
        role="$(basename "$onnx" .onnx)"
        log "building the decoder's ${role} engine from artifact/${onnx}"
        "$trtexec" --onnx="artifact/${onnx}" --stronglyTyped --noTF32 \
            "${cap[@]}" --timingCacheFile=build/timing.cache --saveEngine="build/decoder-${role}.plan" \
            --skipInference 2>&1 | tee "build/trtexec-decoder-${role}.log"
    done
}

# Record the plugin library (and the engines, named after the device like the runtimes name
# them: engines/<gpu>-sm<NN>-trt<x.y.z>.plan, decoder/<role>-<gpu>-sm<NN>-trt<x.y.z>.plan) in
# artifact/device.json with their sha256 and size, bound to the sha256 of
# artifact/manifest.json, which is not touched (docs/design.md §6.1): the C++ and Python
# loaders add these files to the manifest's after checking the binding (and, with trusted
# keys, device.sig). A decoder engine is recorded with its key (the graph's sha256, TensorRT
# version, GPU, SM, no profile), which the runtimes match before running it. Python 3 stdlib.
register() {
    command -v python3 >/dev/null || die "python3 not found: cannot register the engine"
    python3 - "$1" "${DECODER_ONNX:-}" <<'PY'
import hashlib, json, os, re, shutil, sys, time

root, with_engine, graphs = "artifact", sys.argv[1] == "1", sys.argv[2].split()
manifest = open(os.path.join(root, "manifest.json"), "rb").read()
files, engines = {}, {}

def add(src, name):
    dst = os.path.join(root, name)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = os.path.join(os.path.dirname(dst), "." + os.path.basename(dst) + ".tmp")
    shutil.copyfile(src, tmp)  # dot-named: the runtimes ignore it if this is interrupted
    data = open(tmp, "rb").read()
    os.replace(tmp, dst)
    files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    print(f"[build.sh] registered {root}/{name}", file=sys.stderr)

add("build/plugin/libpomexport_plugins.so", "plugins/libpomexport_plugins.so")
if with_engine:
    log = open("build/trtexec.log").read()
    gpu = re.search(r"Selected Device: (.+)", log)
    cc = re.search(r"Compute Capability: (\d+)\.(\d+)", log)
    trt = re.search(r"TensorRT version: (\d+)\.(\d+)\.(\d+)", log)
    if not (gpu and cc and trt):
        sys.exit("[build.sh] error: device name/SM/TensorRT version not in build/trtexec.log")
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.group(1).strip().lower()).strip("-")
    sm = int(cc.group(1)) * 10 + int(cc.group(2))
    release = ".".join(trt.groups())
    add("build/model.plan", f"engines/{slug}-sm{sm}-trt{release}.plan")
    for onnx in graphs:  # decoder/<role>.onnx (export/engine/decoder_engine.py's names, keys)
        role = os.path.basename(onnx)[: -len(".onnx")]
        name = f"decoder/{role}-{slug}-sm{sm}-trt{release}.plan"
        add(f"build/decoder-{role}.plan", name)
        graph = hashlib.sha256(open(os.path.join(root, onnx), "rb").read()).hexdigest()
        key = {"onnx_sha256": graph, "trt_version": release, "gpu_name": gpu.group(1).strip(),
               "sm": sm, "profile": []}
        digest = hashlib.sha256(
            json.dumps(key, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        engines[name] = {"key": key, "digest": digest, "flavor": "portable", "built_utc": built}
record = {
    "format": "pomexport-device-files",
    "format_version": 1,
    "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
    "files": files,
}
if engines:
    record["engines"] = engines
tmp = os.path.join(root, ".device.json.tmp")
with open(tmp, "w") as f:
    f.write(json.dumps(record, indent=2) + "\n")
os.replace(tmp, os.path.join(root, "device.json"))
PY
    sign_device_record
}

# With trusted keys configured the runtimes refuse an unsigned device.json (it names native
# code): stop before compiling anything unless this device has a key to sign it with.
check_device_key() {
    [[ -n "${POMEXPORT_TRUSTED_KEYS:-}" ]] || return 0
    [[ -n "${POMEXPORT_DEVICE_KEY:-}" ]] ||
        die "POMEXPORT_TRUSTED_KEYS is set but POMEXPORT_DEVICE_KEY is not: the runtimes would refuse the unsigned artifact/device.json (make a key: openssl genpkey -algorithm ed25519 -out device.key; add its public key to POMEXPORT_TRUSTED_KEYS)"
    [[ -r "$POMEXPORT_DEVICE_KEY" ]] || die "$POMEXPORT_DEVICE_KEY: cannot read the device key"
}

# Sign artifact/device.json with POMEXPORT_DEVICE_KEY (device.sig, the pomexport-signature
# format of manifest.sig), then check a trusted key verifies it, as the runtimes will.
sign_device_record() {
    rm -f artifact/device.sig
    if [[ -z "${POMEXPORT_DEVICE_KEY:-}" ]]; then
        log "artifact/device.json unsigned (no POMEXPORT_DEVICE_KEY): loaders with trusted keys refuse it"
        return 0
    fi
    command -v openssl >/dev/null || die "openssl not found: cannot sign artifact/device.json"
    mkdir -p build
    openssl pkeyutl -sign -inkey "$POMEXPORT_DEVICE_KEY" -rawin -in artifact/device.json \
        -out build/device.sig.bin || die "$POMEXPORT_DEVICE_KEY: cannot sign with it (an Ed25519 PEM private key?)"
    openssl pkey -in "$POMEXPORT_DEVICE_KEY" -pubout -outform DER -out build/device.pub.der ||
        die "$POMEXPORT_DEVICE_KEY: cannot read its public key"
    python3 - <<'PY' || die "cannot write artifact/device.sig"
import base64, hashlib, json, os
raw_key = open("build/device.pub.der", "rb").read()[-32:]  # SubjectPublicKeyInfo: the raw key last
doc = {
    "format": "pomexport-signature",
    "algorithm": "ed25519",
    "key_id": hashlib.sha256(raw_key).hexdigest()[:16],
    "signature": base64.b64encode(open("build/device.sig.bin", "rb").read()).decode(),
}
with open("artifact/.device.sig.tmp", "w") as f:
    f.write(json.dumps(doc, indent=2) + "\n")
os.replace("artifact/.device.sig.tmp", "artifact/device.sig")
PY
    [[ -n "${POMEXPORT_TRUSTED_KEYS:-}" ]] || {
        log "artifact/device.json signed with $POMEXPORT_DEVICE_KEY"
        return 0
    }
    local key
    local -a keys
    IFS=':' read -ra keys <<<"$POMEXPORT_TRUSTED_KEYS"
    for key in "${keys[@]}"; do
        [[ -n "$key" ]] || continue
        if openssl pkeyutl -verify -pubin -inkey "$key" -rawin -in artifact/device.json \
            -sigfile build/device.sig.bin >/dev/null 2>&1; then
            log "artifact/device.json signed with $POMEXPORT_DEVICE_KEY (trusted key $key)"
            return 0
        fi
    done
    rm -f artifact/device.sig
    die "POMEXPORT_DEVICE_KEY's public key is not in POMEXPORT_TRUSTED_KEYS: the runtimes would refuse artifact/device.json"
}

main() {
    cd "$(dirname "${BASH_SOURCE[0]}")"
    export PATH="/usr/local/cuda/bin:$PATH" # JetPack installs nvcc here, off the default PATH
    JOBS="${JOBS:-$(nproc)}"
    log "target ${TARGET}: CUDA archs ${CUDA_ARCHS}, ${JOBS} compile jobs"
    verify_files
    check_device_key
    local include
    include="$(find_trt_include)"
    mkdir -p build
    build_plugin "$include"
    build_runtime
    check_plugin
    if [[ "${SKIP_ENGINE:-0}" == "1" ]]; then
        register 0
        log "done (no engine: the runtime builds the step engine on its first run)"
        return 0
    fi
    build_engine
    build_decoder_engines
    register 1
    log "done: build/pomrt/generate_y4m artifact out.y4m --frames 16"
}

# Sourcing defines the steps without running them (tests call them one by one).
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
