"""TorchBackend: the step graph into caller-owned buffers, devices, backend selection."""

from __future__ import annotations

import pytest
import torch

from pomexport.errors import ConfigError
from pomexport.runtime import TorchBackend, VideoGenerator
from pomexport.runtime.loading import BACKENDS, load_backend
from pomexport.runtime.torch_backend import resolve_device


@torch.no_grad()
def test_step_writes_model_step_into_given_buffers(make_model, variant):
    model = make_model(variant)
    backend = TorchBackend(model)
    io = backend.allocate(3)
    cfg = model.cfg
    assert io.x_t.shape == (3, cfg.in_channels, cfg.input_size, cfg.input_size)
    assert (io.t.dtype, io.label.dtype, io.frame_index.dtype) == (
        torch.float32,
        torch.int64,
        torch.int64,
    )
    io.x_t.normal_()
    io.t.copy_(torch.tensor([1.0, 0.5, 0.0]))
    io.label.copy_(torch.tensor([0, 3, model.null_label]))
    io.frame_index.copy_(torch.tensor([0, 4, 9]))
    state = torch.randn(cfg.depth, 3, cfg.state_width)
    count = torch.tensor([0.0, 256.0, 576.0])
    state_out = torch.empty_like(state)
    v_ptr, s_ptr = io.v.data_ptr(), state_out.data_ptr()

    backend.step(io, state, count, state_out)

    v_ref, s_ref = model.step(io.x_t, io.t, io.label, io.frame_index, state, count)
    assert torch.equal(io.v, v_ref) and torch.equal(state_out, s_ref)
    assert (io.v.data_ptr(), state_out.data_ptr()) == (v_ptr, s_ptr)  # in place


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            resolve_device("cuda")


def test_load_backend_lists_only_existing_backends(make_model):
    assert BACKENDS == ("torch", "ort", "ort-cuda", "ort-trt", "trt")
    backend = load_backend(make_model(), backend="auto", device="cpu")
    assert backend.name == "torch" and backend.device == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown backend"):
        load_backend(make_model(), backend="tensorflow")
    with pytest.raises(ConfigError, match="runs a built artifact"):
        load_backend(make_model(), backend="ort")
    with pytest.raises(ConfigError, match="unknown model"):
        load_backend("no-such-model")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_generation_matches_cpu(make_model):
    """Noise is drawn on the CPU, so the same seed gives the same clip on every device."""
    model = make_model("moments")
    kw = dict(slots=2, steps=4, cfg_scale=2.0)
    cpu = VideoGenerator(TorchBackend(model, "cpu"), **kw).run([1, 2], frames=4)
    gpu = VideoGenerator(TorchBackend(model, "cuda"), **kw).run([1, 2], frames=4)
    assert (gpu - cpu).abs().max().item() <= 1e-3 * max(cpu.abs().max().item(), 1.0)
