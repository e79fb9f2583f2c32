"""runtime/trt_backend.py: the TensorRT backend against the torch reference, CUDA-graph replay
against eager enqueue; and the clear errors where TensorRT or a GPU is missing.

The TensorRT tests are marked ``tensorrt`` and ``gpu`` and skip with the reason without
TensorRT or a CUDA GPU (docs/design.md §7). The error-path tests run on any machine.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ConfigError
from pomexport.export.artifact import load_artifact
from pomexport.export.pipeline import tensorrt_missing
from pomexport.models.registry import load_model
from pomexport.runtime import VideoGenerator, generate
from pomexport.runtime.backend import Backend
from pomexport.runtime.loading import choose_backend, load_backend

MISSING = tensorrt_missing()
PSNR_MIN_DB = {"fp32": 50.0, "fp16": 30.0}  # export/artifact/gates.py's per-frame bounds
GRAPH_ATOL = 0.0  # a replayed graph runs the very kernels of the eager enqueue


def psnr(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """PSNR in dB of latents in [-1, 1] (peak-to-peak 2)."""
    mse = torch.mean((actual - expected) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(4.0 / mse)).item()


def _one_error_line(result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert "Traceback" not in result.output


# -- without TensorRT ---------------------------------------------------------------------
@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are here: the error path is moot")
def test_cli_build_trt_without_tensorrt_is_one_clear_line(tmp_path):
    out = tmp_path / "a"
    args = ["build", "tiny", "--backend", "trt", "--workspace-mb", "256", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    _one_error_line(result, f"--backend trt: {MISSING}")
    assert not out.exists() and list(tmp_path.iterdir()) == []  # refused before exporting


@pytest.mark.skipif(MISSING is None, reason="TensorRT and a GPU are here: the error path is moot")
def test_generate_with_trt_without_tensorrt_is_one_clear_line(ort_artifact, tmp_path):
    root = str(ort_artifact[0].root)
    args = ["generate", root, "--backend", "trt", "--out", str(tmp_path / "c.npy")]
    result = CliRunner().invoke(cli, [*args, "--frames", "1", "--steps", "1", "--no-progress"])
    _one_error_line(result, "TensorRT is not installed")
    assert list(tmp_path.iterdir()) == []


def test_trt_is_an_artifact_backend(ort_artifact, make_model):
    with pytest.raises(ConfigError, match="--backend trt runs a built artifact"):
        load_backend(make_model(), backend="trt")
    with pytest.raises(ConfigError, match="runs on a GPU"):
        load_backend(ort_artifact[0].root, backend="trt", device="cpu")
    assert choose_backend(ort_artifact[0].root, "trt").backend == "trt"
    if MISSING is not None:  # auto never picks what cannot run here
        assert choose_backend(ort_artifact[0].root, "auto").backend != "trt"


# -- with TensorRT and a GPU --------------------------------------------------------------
@pytest.fixture(scope="module")
def trt_artifact(ort_artifact, tmp_path_factory):
    """The session's fp32 artifact with its TensorRT engine; skips without TensorRT/GPU."""
    # docs/design.md §7: the backend tests skip without TensorRT.
    pytest.importorskip("tensorrt", reason="TensorRT is not installed here")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch: the TensorRT backend runs on the GPU")
    from pomexport.export.engine.builder import engine_from_onnx

    root = shutil.copytree(ort_artifact[0].root, tmp_path_factory.mktemp("trt") / "artifact")
    engine_from_onnx(load_artifact(root), progress=False)
    return load_artifact(root), ort_artifact[1]


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_clip_matches_torch_from_the_same_seed(trt_artifact):
    """8 frames, CFG on: per-frame PSNR against the torch model on the same GPU."""
    from pomexport.runtime.trt_backend import TrtBackend

    artifact, name = trt_artifact
    backend = TrtBackend(artifact)
    assert isinstance(backend, Backend) and backend.name == "trt"
    kw = dict(labels=[3, 1], frames=8, steps=4, cfg_scale=2.0, seed=5)
    ours = generate(backend, **kw)
    reference = generate(load_model(name, seed=0), **kw)
    per_frame = [psnr(ours[:, f], reference[:, f]) for f in range(8)]
    assert min(per_frame) >= PSNR_MIN_DB[artifact.precision], per_frame


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(MISSING is not None, reason=f"needs TensorRT and a CUDA GPU: {MISSING}")
def test_stationary_clip_matches_torch_from_the_same_seed(stationary_artifact, tmp_path):
    """Issue 18 on TensorRT: a decay-0.6 artifact (the discounted read is graph arithmetic
    ahead of the unchanged op/plugin), frames past max_frame_index 2 (an fp32 Clip), CFG on."""
    from pomexport.export.engine.builder import engine_from_onnx
    from pomexport.runtime.trt_backend import TrtBackend

    artifact, model = stationary_artifact
    root = shutil.copytree(artifact.root, tmp_path / "artifact")
    engine_from_onnx(load_artifact(root), progress=False)
    kw = dict(labels=[3, 1], frames=4, steps=2, cfg_scale=2.0, seed=5)
    ours, reference = generate(TrtBackend(load_artifact(root)), **kw), generate(model, **kw)
    per_frame = [psnr(ours[:, f], reference[:, f]) for f in range(4)]
    assert min(per_frame) >= PSNR_MIN_DB["fp32"], per_frame


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_cuda_graph_replay_equals_eager_enqueue(trt_artifact):
    """Same clip with graphs (captured per state pair, replayed) and with plain enqueues."""
    from pomexport.runtime.trt_backend import TrtBackend

    artifact = trt_artifact[0]
    clips, backends = [], []
    for graphs in (True, False):
        backend = TrtBackend(artifact, cuda_graphs=graphs)
        gen = VideoGenerator(backend, slots=2, steps=3, cfg_scale=2.0)
        clips.append(gen.run([3, 1], frames=4, seed=2))
        backends.append(backend)
    graphed, eager = backends
    # video: (committed A or B) x (scratch or the other buffer); image: no commit, one pair
    assert graphed.cuda_graphs and len(graphed._graphs) == (4 if artifact.config.video else 1)
    assert not eager._graphs
    assert torch.allclose(clips[0], clips[1], rtol=0.0, atol=GRAPH_ATOL)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_buffers_are_checked_once_bound(trt_artifact):
    from pomexport.errors import StateError
    from pomexport.runtime.trt_backend import TrtBackend

    backend = TrtBackend(trt_artifact[0])
    cfg = backend.config
    io = backend.allocate(2)
    state = torch.zeros(cfg.depth, 2, cfg.state_width, device=backend.device)
    count = torch.zeros(2, device=backend.device)
    with pytest.raises(StateError, match="must not alias"):
        backend.step(io, state, count, state)
    with pytest.raises(StateError, match="is on cpu"):
        backend.step(io, state.cpu(), count, torch.zeros_like(state))
    with pytest.raises(ConfigError, match="outside the engine's profile"):
        backend.allocate(trt_artifact[0].batch[2] + 1)
