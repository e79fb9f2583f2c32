"""The Triton PolyMixer kernel against ``poly_mixer_reference``, and the dispatcher.

On a CPU machine the kernels run in Triton's interpreter. TRITON_INTERPRET=1 only takes effect
if it is set before ``triton`` itself is first imported (triton.language's own jit helpers are
decorated at import), so the interpreted runs happen in one child process started with the
variable set: the parent builds the inputs, the child runs the kernels (and the dispatcher) on
them, the parent compares the saved outputs with the reference, case by case.
On a GPU machine the ``gpu`` test runs the compiled kernels on CUDA tensors.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.poly_mixer_op import poly_mixer_reference
from pomexport.runtime.kernels import dispatch

HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = "triton is not installed (pip install 'pomexport[triton]'; scripts/test.sh does)"


@pytest.fixture
def _triton_installed() -> None:
    """Any machine can have triton (it runs interpreted on the CPU): missing, it is a failure
    of the setup, not a reason to skip (issue 23)."""
    assert HAS_TRITON, NO_TRITON


needs_triton = pytest.mark.usefixtures("_triton_installed")

# (variant, gate, order, sel_heads): both variants, both gates, orders 1..4, selection heads.
CASES = [
    ("moments", "sigmoid", 1, 0),
    ("moments", "sigmoid", 2, 0),
    ("moments", "hardsigmoid", 3, 1),
    ("moments", "sigmoid", 4, 0),
    ("powers", "hardsigmoid", 1, 0),
    ("powers", "hardsigmoid", 2, 0),
    ("powers", "sigmoid", 3, 0),
    ("powers", "hardsigmoid", 4, 4),
]
FP16_CASES = [("moments", "sigmoid", 2, 0), ("powers", "hardsigmoid", 2, 0)]
EDGE_TOKENS = [0, 1, 31, 33]  # no tokens (state passes through), one, one/two chunks
# y tolerances per dtype; state_out (always fp32) uses rtol 1e-5 and atol 1e-5 * its magnitude.
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float16: dict(rtol=2e-3, atol=1e-3)}

# The child: run every job through the kernel module (or the dispatcher) and save the outputs.
CHILD = """
import sys, torch
from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.poly_mixer_op import as_op_kernel
from pomexport.runtime.kernels import dispatch
from pomexport.runtime.kernels.triton_poly_mixer import poly_mixer_triton

def run_model(config, weights, clip, gen_kw):
    # The op's CPU kernel becomes the interpreted Triton kernel (as install_cuda_kernel makes
    # it on CUDA) for the rest of this process: the model job is the last one. Calls are
    # counted (a fallback to the reference would leave 0).
    from pomexport.models import PoMDiT, PoMDiTConfig
    from pomexport.models.poly_mixer_op import OP_NAME
    from pomexport.runtime import TorchBackend, generate
    model = PoMDiT(PoMDiTConfig.from_dict(config))
    model.load_state_dict(weights)
    calls = []
    def kernel(*args):
        calls.append(1)
        return as_op_kernel(poly_mixer_triton)(*args)
    torch.library.register_kernel(OP_NAME, "cpu", kernel)
    x, t, label, index = clip
    state, count = model.eval().zero_state(x.shape[0])
    vs = []
    with torch.no_grad():
        for f in range(x.shape[1]):
            v, state = model.step(x[:, f], t[:, f], label, index[:, f], state, count)
            count = count + model.cfg.tokens_per_frame
            vs.append(v)
    stepped = len(calls)
    frames = generate(TorchBackend(model), **gen_kw)
    return torch.stack(vs, 1), state, frames, stepped, len(calls) - stepped

jobs = torch.load(sys.argv[1])
out = []
for inputs, attrs, via in jobs:
    if via == "dispatch":
        backend = dispatch.choose_backend(*inputs, MixerAttrs(*attrs))[0]
        out.append((backend, dispatch.poly_mixer(*inputs, MixerAttrs(*attrs))))
    elif via == "model":
        out.append(("triton", run_model(*inputs)))
    else:
        out.append(("triton", poly_mixer_triton(*inputs, MixerAttrs(*attrs))))
torch.save(out, sys.argv[2])
"""


def make_inputs(variant, order, sel_heads, dtype, device="cpu", shape=(2, 70, 24), seed=0):
    """Small inputs; N=70 spans four token chunks, so the chunked reduction is exercised."""
    gen = torch.Generator().manual_seed(seed)
    b, n, c = shape
    h = torch.randn(b, n, c, generator=gen)
    g = torch.randn(b, n, sel_heads if sel_heads > 1 else c, generator=gen)
    state = torch.randn(b, c, generator=gen)
    count = torch.tensor([0.0, 37.0])[:b]
    coeff = torch.randn(c, order, generator=gen) if variant == "powers" else None
    as_dev = lambda t: None if t is None else t.to(device)  # noqa: E731
    return as_dev(h.to(dtype)), as_dev(g.to(dtype)), as_dev(state), as_dev(count), as_dev(coeff)


def _jobs() -> dict[str, tuple]:
    jobs = {}
    for variant, gate, order, heads in CASES:
        attrs = (variant, order, gate, heads)
        jobs[f"fp32-{variant}-{gate}-{order}-{heads}"] = (
            make_inputs(variant, order, heads, torch.float32),
            attrs,
            "kernel",
        )
    for variant, gate, order, heads in FP16_CASES:
        attrs = (variant, order, gate, heads)
        inputs = make_inputs(variant, order, heads, torch.float16)
        jobs[f"fp16-{variant}"] = (inputs, attrs, "kernel")
    for n in EDGE_TOKENS:
        inputs = make_inputs("moments", 2, 0, torch.float32, shape=(2, n, 8))
        jobs[f"tokens-{n}"] = (inputs, ("moments", 2, "sigmoid", 0), "kernel")
    inputs = make_inputs("powers", 3, 4, torch.float32)
    jobs["dispatch"] = (inputs, ("powers", 3, "hardsigmoid", 4), "dispatch")
    for variant, gate, order, heads in (CASES[1], CASES[7]):
        jobs[f"stationary-{variant}"] = (
            stationary_inputs(variant, order, heads),
            (variant, order, gate, heads),
            "kernel",
        )
    model = stationary_model()
    jobs["stationary-model"] = (
        (model.cfg.to_dict(), model.state_dict(), stationary_clip(model), STATIONARY_GENERATE),
        (),
        "model",
    )  # last: it makes the Triton kernel the op's CPU kernel in the child
    return jobs


# The stationary model job (issue 18): small (16 tokens, C = 64) since the interpreter runs
# every program of the grid in Python; 3 frames, the last past max_frame_index 1.
STATIONARY_GENERATE = dict(labels=[3], frames=3, steps=1, cfg_scale=1.0, seed=5)


def stationary_model():
    """A decay-0.6 PoM-DiT, max_frame_index 1, non-trivial random weights (as tests/conftest)."""
    from pomexport.models import PoMDiT, PoMDiTConfig

    cfg = PoMDiTConfig(input_size=8, in_channels=3, patch_size=2, width=16, depth=2)
    model = PoMDiT(cfg.replace(num_classes=10, decay=0.6, max_frame_index=1))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.1 if p.dim() > 1 else 0.05))
    return model.eval()


def stationary_clip(model) -> tuple[torch.Tensor, ...]:
    """(x (2, 3, C_in, H, W), t (2, 3), label (2,), frame_index (2, 3))."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    return x, torch.rand(2, 3, generator=gen), torch.tensor([1, 4]), torch.arange(3).expand(2, 3)


def stationary_inputs(variant: str, order: int, sel_heads: int) -> tuple:
    """What a decay-0.6 model's step hands the op (issue 18): the discounted read of a state
    after 5 and 37 frames, i.e. ``0.6 * state`` and a non-integer ``0.6 * c_d`` count."""
    from pomexport.models.mixer import discounted_read

    h, g, state, _, coeff = make_inputs(variant, order, sel_heads, torch.float32)
    read, read_count = discounted_read(state, torch.tensor([5.0, 37.0]) * 70, 0.6, 70)
    assert read_count[0] != read_count[0].round()
    return h, g, read, read_count, coeff


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict[str, tuple]:
    """name -> (job, backend, (y, state_out)) from one TRITON_INTERPRET=1 child process (the
    model job: its step-through, state, generated frames and Triton call counts)."""
    assert HAS_TRITON, NO_TRITON
    tmp = tmp_path_factory.mktemp("triton_interpret")
    jobs = _jobs()
    torch.save(list(jobs.values()), tmp / "jobs.pt")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", CHILD, str(tmp / "jobs.pt"), str(tmp / "out.pt")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"Triton interpreter run failed:\n{run.stderr[-4000:]}"
    outputs = torch.load(tmp / "out.pt")
    return {name: (job, *out) for (name, job), out in zip(jobs.items(), outputs, strict=True)}


def assert_matches_reference(y, state_out, inputs, attrs, dtype):
    y_ref, state_ref = poly_mixer_reference(*inputs, MixerAttrs(*attrs))
    assert y.dtype == dtype and state_out.dtype == torch.float32
    assert y.shape == y_ref.shape and state_out.shape == state_ref.shape
    scale = state_ref.abs().max().item() + 1.0
    torch.testing.assert_close(state_out.cpu(), state_ref.cpu(), rtol=1e-5, atol=1e-5 * scale)
    torch.testing.assert_close(y.float().cpu(), y_ref.float().cpu(), **TOLERANCES[dtype])


def _check(interpreted, name, dtype=torch.float32):
    (inputs, attrs, _), backend, (y, state_out) = interpreted[name]
    assert_matches_reference(y, state_out, inputs, attrs, dtype)
    return backend


@needs_triton
@pytest.mark.parametrize("variant,gate,order,sel_heads", CASES)
def test_interpreted_kernel_matches_reference_fp32(interpreted, variant, gate, order, sel_heads):
    _check(interpreted, f"fp32-{variant}-{gate}-{order}-{sel_heads}")


@needs_triton
@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_interpreted_kernel_fp16_inputs_accumulate_in_fp32(interpreted, variant):
    _check(interpreted, f"fp16-{variant}", torch.float16)


@needs_triton
@pytest.mark.parametrize("tokens", EDGE_TOKENS)
def test_interpreted_kernel_token_edges(interpreted, tokens):
    _check(interpreted, f"tokens-{tokens}")


@needs_triton
def test_dispatcher_uses_triton_under_the_interpreter(interpreted):
    assert _check(interpreted, "dispatch") == dispatch.TRITON


@needs_triton
@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_interpreted_kernel_reads_a_stationary_state(interpreted, variant):
    _check(interpreted, f"stationary-{variant}")


@needs_triton
def test_stationary_model_through_the_interpreted_kernel_keeps_the_state_contract(interpreted):
    """Issue 18 with the Triton kernel as the op (TRITON_INTERPRET=1): a decay-0.6 model past
    max_frame_index 1, frame by frame through ``step``, equals the torch reference's
    block-causal parallel forward (1e-5, as in tests/models); the torch backend's generator
    equals the same generator on the torch op."""
    from pomexport.runtime import generate

    (inputs, _, _), backend, out = interpreted["stationary-model"]
    v_seq, state, frames, stepped, generated = out
    model, (x, t, label, index) = stationary_model(), inputs[2]
    depth = model.cfg.depth
    assert backend == "triton" and stepped == 3 * depth and generated == 3 * 2 * depth
    with torch.no_grad():
        v_par, sums = model.forward_clip(x, t, label, index)
    assert (v_seq - v_par).abs().max().item() <= 1e-5
    expected = torch.zeros_like(state)
    for f in range(3):
        expected = 0.6 * expected + sums[:, :, f]
    assert (state - expected).abs().max().item() <= 1e-5 * max(expected.abs().max().item(), 1.0)
    assert (frames - generate(model, **STATIONARY_GENERATE)).abs().max().item() <= 1e-4


@needs_triton
def test_token_chunks_cover_every_token():
    """Chunks of ceil(N / chunks) tokens cover N with >= 16 tokens each (N >= 16); past 128 * 16
    tokens trailing chunks may be empty (begin >= N): both kernels then write a zero partial."""
    from pomexport.runtime.kernels.triton_poly_mixer import token_chunks

    tokens = (0, 1, 16, 17, 2048, 2049, 10**6)
    assert [token_chunks(n) for n in tokens] == [0, 1, 1, 1, 128, 128, 128]
    for n in range(1, 5000, 7):
        chunks = token_chunks(n)
        per_chunk = -(-n // chunks)
        assert chunks * per_chunk >= n and per_chunk >= min(n, 16)


@needs_triton
def test_uncovered_cases_have_a_reason():
    from pomexport.runtime.kernels.triton_poly_mixer import uncovered_reason

    h, g, state, count, _ = make_inputs("moments", 2, 0, torch.float32)
    assert uncovered_reason(h, g, None, MixerAttrs("moments", 2, "sigmoid", 0)) is None
    assert "order" in uncovered_reason(h, g, None, MixerAttrs("moments", 5, "sigmoid", 0))
    moments = MixerAttrs("moments", 2, "sigmoid", 0)
    assert "dtype" in uncovered_reason(h.double(), g.double(), None, moments)
    assert "coeff" in uncovered_reason(h, g, None, MixerAttrs("powers", 2, "sigmoid", 0))


def test_dispatcher_falls_back_instead_of_raising(monkeypatch):
    """Uncovered cases (order 5, fp64, CPU without the interpreter) run the torch op."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    for order, dtype in [(2, torch.float32), (5, torch.float32), (2, torch.float64)]:
        inputs = make_inputs("moments", order, 0, dtype, shape=(2, 5, 10 * order))
        attrs = MixerAttrs("moments", order, "sigmoid", 0)
        backend, reason = dispatch.choose_backend(*inputs, attrs)
        assert backend == dispatch.TORCH and reason
        y, state_out = dispatch.poly_mixer(*inputs, attrs)
        y_ref, state_ref = poly_mixer_reference(*inputs, attrs)
        torch.testing.assert_close(y, y_ref)
        torch.testing.assert_close(state_out, state_ref)


def test_dispatcher_keeps_autograd_on_the_torch_op(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    h, g, state, count, _ = make_inputs("moments", 2, 0, torch.float32)
    h.requires_grad_(True)
    attrs = MixerAttrs("moments", 2, "sigmoid", 0)
    backend, reason = dispatch.choose_backend(h, g, state, count, None, attrs)
    assert backend == dispatch.TORCH and reason
    y, _ = dispatch.poly_mixer(h, g, state, count, None, attrs)
    y.sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_install_cuda_kernel_leaves_cpu_on_the_reference():
    """Installing the Triton CUDA kernel changes nothing for CPU tensors (or without triton)."""
    assert dispatch.install_cuda_kernel() == HAS_TRITON
    inputs = make_inputs("moments", 2, 0, torch.float32)
    y, state_out = torch.ops.pomexport.poly_mixer(*inputs, "moments", 2, "sigmoid", 0)
    y_ref, state_ref = poly_mixer_reference(*inputs, MixerAttrs("moments", 2, "sigmoid", 0))
    assert torch.equal(y, y_ref) and torch.equal(state_out, state_ref)


@pytest.mark.gpu
@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_installed_cuda_kernel_under_cuda_graph_and_autograd():
    """The op on CUDA runs Triton, replays inside a CUDA graph, and still differentiates."""
    assert dispatch.install_cuda_kernel()
    inputs = make_inputs("powers", 3, 4, torch.float32, device="cuda", shape=(2, 256, 64))
    attrs = ("powers", 3, "hardsigmoid", 4)
    torch.ops.pomexport.poly_mixer(*inputs, *attrs)  # compile outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y, state_out = torch.ops.pomexport.poly_mixer(*inputs, *attrs)
    inputs[0].mul_(0.5)  # new data in the captured input buffer, then replay
    graph.replay()
    assert_matches_reference(y, state_out, inputs, attrs, torch.float32)
    h = inputs[0].clone().requires_grad_(True)
    torch.ops.pomexport.poly_mixer(h, *inputs[1:], *attrs)[0].sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("variant,gate,order,sel_heads", CASES)
def test_compiled_kernel_matches_reference_on_cuda(variant, gate, order, sel_heads, dtype):
    from pomexport.runtime.kernels.triton_poly_mixer import poly_mixer_triton

    inputs = make_inputs(variant, order, sel_heads, dtype, device="cuda", shape=(2, 1000, 96 * 4))
    attrs = (variant, order, gate, sel_heads)
    y, state_out = poly_mixer_triton(*inputs, MixerAttrs(*attrs))
    assert_matches_reference(y, state_out, inputs, attrs, dtype)
