#!/usr/bin/env bash
# Set up a fresh machine and run the whole test suite (what CI runs, via .ci/run).
# CPU only: tests that need a GPU or TensorRT skip with their reason (`pytest -rs` lists them).
# The triton extra runs the Triton PolyMixer kernel under TRITON_INTERPRET=1 on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
# The CPU build of torch first: a plain `pip install torch` pulls a multi-GB CUDA build.
python -m pip install --quiet --disable-pip-version-check torch==2.13.0
python -m pip install --quiet --disable-pip-version-check -e ".[onnx,test,triton]"
pytest -q
