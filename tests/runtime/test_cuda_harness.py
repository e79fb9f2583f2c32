"""The ctypes harness of the CUDA kernels.

On any machine (nvcc is required: this kind of machine has CUDA 13): the harness library
builds with the harness's own nvcc command and its host-side entry points (workspace size,
argument validation) answer correctly. On a GPU machine: the kernels match
``torch.ops.pomexport.poly_mixer`` for both variants and dtypes.
"""

from __future__ import annotations

import ctypes
import logging
import subprocess

import pytest
import torch

from pomexport.runtime.kernels import cuda_harness

logger = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def library(tmp_path_factory, nvcc):
    """libpomexport_polymixer.so for sm_90 (the current GPU's SM on a GPU machine)."""
    out = tmp_path_factory.mktemp("harness")
    if torch.cuda.is_available():
        return cuda_harness.build_library(out)
    path = out / cuda_harness.LIBRARY_NAME
    run = subprocess.run(cuda_harness.nvcc_command(path, ["90"]), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return path


def test_harness_library_host_entry_points(library):
    """Loading needs no GPU; these two functions never touch CUDA."""
    lib = ctypes.CDLL(str(library))
    lib.polymixer_workspace_size.argtypes = [ctypes.c_int64] * 3
    lib.polymixer_workspace_size.restype = ctypes.c_size_t
    lib.polymixer_validate.argtypes = [ctypes.c_int64] * 3 + [ctypes.c_int32] * 4
    lib.polymixer_validate.restype = ctypes.c_char_p
    # clamp(N / 16, 1, 128) chunks of fp32 partial sums
    assert lib.polymixer_workspace_size(8, 4096, 1152) == 8 * 128 * 1152 * 4
    assert lib.polymixer_workspace_size(2, 70, 24) == 2 * 4 * 24 * 4
    assert lib.polymixer_workspace_size(2, 0, 24) == 0
    # (B, N, C, variant, order, sel_heads, has_coeff)
    assert lib.polymixer_validate(2, 70, 24, 0, 2, 0, 0) is None
    assert lib.polymixer_validate(2, 70, 24, 1, 4, 4, 1) is None
    assert b"order" in lib.polymixer_validate(2, 70, 24, 0, 5, 0, 0)
    assert b"divisible by order" in lib.polymixer_validate(2, 70, 25, 0, 2, 0, 0)
    assert b"coeff" in lib.polymixer_validate(2, 70, 24, 1, 2, 0, 0)
    assert b"sel_heads" in lib.polymixer_validate(2, 70, 24, 1, 2, 5, 1)
    assert b"batch" in lib.polymixer_validate(70000, 1, 24, 0, 2, 0, 0)


CASES = [
    ("moments", "sigmoid", 1, 0),
    ("moments", "sigmoid", 2, 0),
    ("moments", "hardsigmoid", 3, 0),
    ("moments", "sigmoid", 4, 0),
    ("powers", "hardsigmoid", 2, 0),
    ("powers", "sigmoid", 3, 0),
    ("powers", "hardsigmoid", 4, 8),
]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("variant,gate,order,sel_heads", CASES)
@pytest.mark.parametrize("shape", [(2, 1, 64), (3, 333, 96), (4, 4096, 384)])
def test_cuda_kernels_match_torch_op(library, variant, gate, order, sel_heads, dtype, shape):
    kernel = cuda_harness.CudaPolyMixer(library)
    inputs = cuda_harness.make_case(variant, order, sel_heads, dtype, shape=shape)
    report = cuda_harness.compare(kernel, inputs, (variant, order, gate, sel_heads), "case")
    logger.info("%s", report)
    assert report, str(report)
