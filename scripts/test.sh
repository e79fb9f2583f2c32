#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (what CI runs, via .ci/run).
# CPU only: tests that need a GPU or TensorRT skip with their reason (`pytest -rs` lists them).
# The triton extra runs the Triton PolyMixer kernel under TRITON_INTERPRET=1 on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the C++ runtime (runtime/cpp, built by tests/runtime/test_cpp_runtime.py) needs: cmake,
# g++, nlohmann-json and OpenSSL's libcrypto (Debian/Ubuntu package names); only when missing.
if command -v apt-get >/dev/null 2>&1 && { [[ ! -f /usr/include/nlohmann/json.hpp ]] ||
    [[ ! -f /usr/include/openssl/evp.h ]] || ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; }; then
    apt-get update -qq && apt-get install -y -qq cmake g++ nlohmann-json3-dev libssl-dev >/dev/null
fi
# The CPU build of torch first: a plain `pip install torch` pulls a multi-GB CUDA build.
python -m pip install --quiet --disable-pip-version-check torch==2.13.0
python -m pip install --quiet --disable-pip-version-check -e ".[onnx,test,triton,plots,serve]"
# tritonserver for tests/runtime/test_serving.py (55 MB wheel); --no-deps: its Python API pins numpy<2.
python -m pip install --quiet --disable-pip-version-check --no-deps nvidia-pytriton==0.7.0
pytest -q
