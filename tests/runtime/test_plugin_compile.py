"""The plugin sources agree with export/artifact/contract.py; the CUDA kernels compile.

- contract: polyMixerContract.h and polymixer_plugin.config carry contract.py's names;
- nvcc: polyMixerKernel.cu compiles for Orin (sm_87), H100 (sm_90) and Thor (sm_110, or sm_101
  on CUDA 12.8/12.9) in one nvcc call, warnings as errors (a missing nvcc, or one older than
  12.8, fails: this kind of machine has CUDA 13);
- TensorRT headers: scripts/check_trt_headers.sh for every header folder listed in
  POMEXPORT_TRT_HEADERS (os.pathsep-separated; e.g. the include/ folders of NVIDIA's TensorRT
  repository, branches release/10.3, release/10.13 and main), skipped when it is not set; the
  built library lists exactly one creator, contract.py's (name, version, namespace).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

from pomexport.export.artifact import contract
from pomexport.models.polynomial import GATES, VARIANTS

ROOT = Path(contract.__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "runtime" / "plugin"
HEADER = PLUGIN_DIR / "polyMixerContract.h"


def header_constants() -> dict[str, str | int]:
    """``kNAME -> value`` for the header's ``constexpr`` string and integer constants."""
    text = HEADER.read_text()
    found: dict[str, str | int] = {}
    for name, value in re.findall(r'constexpr char const\* (k\w+) = "([^"]*)";', text):
        found[name] = value
    for name, value in re.findall(r"constexpr int32_t (k\w+) = (-?\d+);", text):
        found[name] = int(value)
    return found


def test_contract_header_matches_contract_py():
    k = header_constants()
    assert (k["kDOMAIN"], k["kOP_TYPE"], k["kOP_VERSION"]) == (
        contract.DOMAIN,
        contract.OP_TYPE,
        contract.OP_VERSION,
    )
    assert (k["kPLUGIN_NAME"], k["kPLUGIN_VERSION"], k["kPLUGIN_NAMESPACE"]) == (
        contract.PLUGIN_NAME,
        contract.PLUGIN_VERSION,
        contract.PLUGIN_NAMESPACE,
    )
    names = [name.upper() for name in contract.OP_ATTRIBUTES]
    attrs = {k[f"kATTR_{name}"]: k[f"kDEFAULT_{name}"] for name in names}
    assert attrs == {name: default for name, (_, default) in contract.OP_ATTRIBUTES.items()}
    assert (k["kVARIANT_MOMENTS"], k["kVARIANT_POWERS"]) == VARIANTS
    assert (k["kGATE_SIGMOID"], k["kGATE_HARDSIGMOID"]) == GATES
    assert [k[f"kINPUT_{name.upper()}"] for name in contract.OP_INPUTS] == list(range(5))
    outputs = {"y": "kOUTPUT_Y", "state_out": "kOUTPUT_STATE"}
    assert [k[outputs[name]] for name in contract.OP_OUTPUTS] == [0, 1]


def test_plugin_config_lists_the_contract():
    entries = dict(
        line.split(":", 1)
        for line in (PLUGIN_DIR / "polymixer_plugin.config").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    entries = {key.strip(): value.strip() for key, value in entries.items()}
    assert entries["name"] == contract.PLUGIN_NAME
    assert entries["version"] == contract.PLUGIN_VERSION
    assert entries["namespace"] == contract.PLUGIN_NAMESPACE
    assert entries["onnx_domain"] == contract.DOMAIN and entries["onnx_op_type"] == contract.OP_TYPE
    assert entries["onnx_plugin_namespace_attribute"] == contract.PLUGIN_NAMESPACE_ATTRIBUTE
    attributes = {
        key.removeprefix("attribute."): value
        for key, value in entries.items()
        if key.startswith("attribute.")
    }
    assert set(attributes) == set(contract.OP_ATTRIBUTES)
    for name, (_, default) in contract.OP_ATTRIBUTES.items():
        assert attributes[name].split(", ")[1] == str(default), name
    inputs = [key.removeprefix("input.") for key in entries if key.startswith("input.")]
    assert inputs == list(contract.OP_INPUTS)


def test_cuda_and_triton_split_tokens_alike():
    """Both kernels chunk the token sum the same way (same rounding, same workspace)."""
    cuda = (PLUGIN_DIR / "polyMixerKernel.cu").read_text()
    cuda_values = {
        name: int(value) for name, value in re.findall(r"constexpr int64_t (k\w+) = (\d+);", cuda)
    }
    tree = ast.parse((ROOT / "runtime" / "kernels" / "triton_poly_mixer.py").read_text())
    py_values = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
    }
    assert cuda_values["kMIN_TOKENS_PER_CHUNK"] == py_values["MIN_TOKENS_PER_CHUNK"]
    assert cuda_values["kMAX_TOKEN_CHUNKS"] == py_values["MAX_TOKEN_CHUNKS"]


def thor_arch(nvcc: str) -> str | None:
    """Thor's SM number in this nvcc: 110 (CUDA 13) or 101 (CUDA 12.8/12.9)."""
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True).stdout
    for arch in ("110", "101"):
        if f"compute_{arch}" in listed.split():
            return arch
    return None


def test_nvcc_compiles_kernels_for_orin_h100_thor(nvcc, tmp_path):
    thor = thor_arch(nvcc)
    assert thor, f"{nvcc} knows no Thor architecture (needs CUDA >= 12.8)"
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ("87", "90", thor)]
    cmd = [nvcc, "-std=c++17", "-O3", "-Werror", "all-warnings", "-Xcompiler", "-Wall,-Wextra"]
    cmd += [*gencode, "-c", str(PLUGIN_DIR / "polyMixerKernel.cu"), "-o", str(tmp_path / "k.o")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"{' '.join(cmd)}\n{run.stderr}"
    assert (tmp_path / "k.o").stat().st_size > 0


TRT_HEADER_DIRS = [p for p in os.environ.get("POMEXPORT_TRT_HEADERS", "").split(os.pathsep) if p]


@pytest.mark.skipif(not TRT_HEADER_DIRS, reason="needs TensorRT headers: set POMEXPORT_TRT_HEADERS")
@pytest.mark.parametrize("include_dir", TRT_HEADER_DIRS)
def test_plugin_compiles_against_tensorrt_headers(nvcc, include_dir):
    script = ROOT / "scripts" / "check_trt_headers.sh"
    run = subprocess.run(
        ["bash", str(script), include_dir], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "PASSED: 0 check(s) failed" in run.stdout
    # The library's creators, as getCreators lists them (pluginSelfTest prints one line each):
    # TensorRT's loadLibrary refuses a library whose (name, version, namespace) repeats.
    creators = re.findall(r"^creator: (\S+) (\S+) ?(\S*)$", run.stdout, flags=re.MULTILINE)
    assert len(creators) == len(set(creators)), creators
    assert creators == [(contract.PLUGIN_NAME, contract.PLUGIN_VERSION, contract.PLUGIN_NAMESPACE)]
