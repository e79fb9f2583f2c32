"""The ctypes harness of the CUDA kernels.

On any machine (nvcc is required: this kind of machine has CUDA 13): the harness library
builds with the harness's own nvcc command and its host-side entry points (workspace size,
argument validation) answer correctly. On a GPU machine: the kernels match
``torch.ops.pomexport.poly_mixer`` for both variants and dtypes, on the inputs a stationary
state (issue 18) hands them too, and a decay < 1 model keeps the state contract with them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys

import pytest
import torch

from pomexport.export.artifact.contract import MixerAttrs
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
    attrs = MixerAttrs(variant, order, gate, sel_heads)
    inputs = cuda_harness.make_case(attrs, dtype, shape=shape)
    report = cuda_harness.compare(kernel, inputs, attrs, "case")
    logger.info("%s", report)
    assert report, str(report)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("variant,gate,order,sel_heads", [CASES[1], CASES[6]])
def test_cuda_kernels_read_a_stationary_state(library, variant, gate, order, sel_heads, dtype):
    """Issue 18: what a decay-0.6 model's step hands the op after 5 and 37 frames (0.6 * state
    and a non-integer 0.6 * c_d count), through the kernels, against the torch op."""
    from pomexport.models.mixer import discounted_read

    kernel = cuda_harness.CudaPolyMixer(library)
    attrs = MixerAttrs(variant, order, gate, sel_heads)
    h, g, state, _, coeff = cuda_harness.make_case(attrs, dtype, (2, 333, 96))
    frames = torch.tensor([5.0, 37.0], device="cuda")
    read, read_count = discounted_read(state, frames * 333, 0.6, 333)
    assert read_count[0] != read_count[0].round()
    inputs = (h, g, read, read_count, coeff)
    report = cuda_harness.compare(kernel, inputs, attrs, "stationary")
    logger.info("%s", report)
    assert report, str(report)


# The child of the model-level test: the CUDA kernels become the op's CUDA kernel (for this
# process only), then a stationary model runs frame by frame on the GPU. Counts the calls: a
# fallback to the torch op would leave 0.
MODEL_CHILD = """
import sys, torch
from pomexport.models import PoMDiT, PoMDiTConfig
from pomexport.models.poly_mixer_op import OP_NAME, as_op_kernel
from pomexport.runtime.kernels.cuda_harness import CudaPolyMixer
config, weights, clip = torch.load(sys.argv[1])
kernel, calls = as_op_kernel(CudaPolyMixer(sys.argv[2])), []
def cuda_kernel(*args):
    calls.append(1)
    return kernel(*args)
torch.library.register_kernel(OP_NAME, "cuda", cuda_kernel)
model = PoMDiT(PoMDiTConfig.from_dict(config))
model.load_state_dict(weights)
model = model.eval().cuda()
x, t, label, index = (c.cuda() for c in clip)
state, count = model.zero_state(x.shape[0], "cuda")
vs = []
with torch.no_grad():
    for f in range(x.shape[1]):
        v, state = model.step(x[:, f], t[:, f], label, index[:, f], state, count)
        count = count + model.cfg.tokens_per_frame
        vs.append(v.cpu())
torch.save((torch.stack(vs, 1), state.cpu(), len(calls)), sys.argv[3])
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stationary_model_through_the_cuda_kernels_keeps_the_state_contract(
    library, make_model, tmp_path
):
    """Issue 18 on the GPU: a decay-0.6 model past max_frame_index 2, frame by frame through
    ``step`` with the CUDA kernels as the op, equals the CPU reference's block-causal parallel
    forward (1e-3 of the scale, as tests/runtime/test_torch_backend.py's CUDA vs CPU bound:
    cuDNN may run the patch conv in TF32)."""
    model = make_model("moments", decay=0.6, max_frame_index=2)
    cfg, frames = model.cfg, 4
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, frames, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    clip = (x, torch.rand(2, frames, generator=gen), torch.tensor([1, 4]))
    clip += (torch.arange(frames).expand(2, frames).contiguous(),)
    torch.save((cfg.to_dict(), model.state_dict(), clip), tmp_path / "job.pt")
    cmd = [sys.executable, "-c", MODEL_CHILD, str(tmp_path / "job.pt"), str(library)]
    run = subprocess.run(
        [*cmd, str(tmp_path / "out.pt")], env=dict(os.environ), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-4000:]
    v_seq, state, calls = torch.load(tmp_path / "out.pt")
    assert calls == frames * cfg.depth
    with torch.no_grad():
        v_par, sums = model.forward_clip(*clip)
    expected = torch.zeros_like(state)
    for f in range(frames):
        expected = 0.6 * expected + sums[:, :, f]
    assert (v_seq - v_par).abs().max().item() <= 1e-3 * max(v_par.abs().max().item(), 1.0)
    assert (state - expected).abs().max().item() <= 1e-3 * max(expected.abs().max().item(), 1.0)
