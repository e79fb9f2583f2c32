#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (what CI runs, via .ci/run).
# CPU only: only tests that need a GPU or TensorRT skip, with their reason; any other skip
# fails (tests/conftest.py), and `-ra` (which includes -rs) lists every skip and its reason.
# The triton extra runs the Triton PolyMixer kernel under TRITON_INTERPRET=1 on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# What the C++ runtime (runtime/cpp, built by tests/runtime/test_cpp_runtime.py) needs: cmake,
# g++, nlohmann-json and OpenSSL's libcrypto; shellcheck for the deploy bundle's build script
# (tests/export/test_bundle.py). Debian/Ubuntu package names; only when missing.
if command -v apt-get >/dev/null 2>&1 && { [[ ! -f /usr/include/nlohmann/json.hpp ]] ||
    [[ ! -f /usr/include/openssl/evp.h ]] || ! command -v cmake >/dev/null ||
    ! command -v g++ >/dev/null || ! command -v shellcheck >/dev/null; }; then
    apt-get update -qq
    apt-get install -y -qq cmake g++ nlohmann-json3-dev libssl-dev shellcheck >/dev/null
fi
# nvcc compiles the CUDA kernels (no GPU needed); this kind of machine has the toolkit here.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export PATH="/usr/local/cuda/bin:$PATH"
fi
pip_install() { "$1" -m pip install --quiet --disable-pip-version-check "${@:2}"; }
# The CPU build of torch first: a plain `pip install torch` pulls a multi-GB CUDA build.
pip_install python torch==2.13.0
pip_install python -e ".[onnx,test,triton,plots,serve,decoder]"
# tritonserver for tests/runtime/serving/test_serving.py (55 MB wheel); --no-deps: its Python API pins numpy<2.
pip_install python --no-deps nvidia-pytriton==0.7.0
python -m pytest -q -ra

# Serving again from a fresh virtualenv with a regular (not editable) install, as the README
# has a user do it (issue 23): the Triton stub must see the virtualenv's packages, not the
# base interpreter's.
venv_root="$(mktemp -d)"
trap 'rm -rf "$venv_root"' EXIT
python -m venv "$venv_root/venv"
venv_python="$venv_root/venv/bin/python"
pip_install "$venv_python" torch==2.13.0
pip_install "$venv_python" ".[onnx,test,serve]"
pip_install "$venv_python" --no-deps nvidia-pytriton==0.7.0
"$venv_python" -m pytest -q -ra -p no:cacheprovider tests/runtime/serving/test_serving.py
