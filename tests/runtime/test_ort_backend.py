"""ONNX Runtime backend: same clip as torch from the same seed, streams independent of their
batch, IO binding reused across steps, bad artifacts refused with one clear error."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact import PORTABLE, load_artifact, write_manifest
from pomexport.models.registry import DEFAULT_MODEL, bundled_path, load_model
from pomexport.runtime import TorchBackend, VideoGenerator, generate
from pomexport.runtime.backend import Backend
from pomexport.runtime.loading import choose_backend, load_backend
from pomexport.runtime.ort_backend import OrtBackend
from pomexport.runtime.providers import CUDA_EP, TRT_EP, available_providers

PSNR_MIN_DB = 50.0  # issue 4's acceptance bound, on images in [-1, 1] (peak-to-peak 2)
_GPU, _EPS = torch.cuda.is_available(), available_providers()
STREAM_ATOL = 1e-5  # same stream alone vs in a batch: only GEMM blocking order differs


def psnr(actual: torch.Tensor, expected: torch.Tensor) -> float:
    mse = torch.mean((actual - expected) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(4.0 / mse)).item()


@pytest.fixture(scope="module")
def backend(ort_artifact) -> OrtBackend:
    return OrtBackend(ort_artifact[0], threads=1)


@pytest.fixture(scope="module")
def model(ort_artifact):
    return load_model(ort_artifact[1], seed=0)


def _copy(artifact, tmp_path):
    return shutil.copytree(artifact.root, tmp_path / "artifact")


def test_protocol_and_description(backend, ort_artifact):
    assert isinstance(backend, Backend)
    assert backend.name == "ort-cpu" and backend.device == torch.device("cpu")
    assert backend.dtype == torch.float32 and backend.providers == ["CPUExecutionProvider"]
    assert backend.config == ort_artifact[0].config


def test_clip_matches_torch_from_the_same_seed(backend, model):
    """16 frames, CFG on (the unconditional rows have their own state): PSNR >= 50 dB."""
    kw = dict(labels=[3], frames=16, steps=2, cfg_scale=2.0, seed=5)
    ours, reference = generate(backend, **kw), generate(model, **kw)
    assert ours.shape == reference.shape == (1, 16, *reference.shape[2:])
    per_frame = [psnr(ours[:, f], reference[:, f]) for f in range(16)]
    assert min(per_frame) >= PSNR_MIN_DB, per_frame


def test_acceptance_runs_on_the_bundled_model(ort_artifact):
    """The weights ship in the package: the PSNR test above ran on the trained model."""
    assert bundled_path(DEFAULT_MODEL).is_file()
    assert ort_artifact[1] == DEFAULT_MODEL


def test_stationary_clip_matches_torch_from_the_same_seed(stationary_artifact):
    """Issue 18 on ONNX Runtime: decay 0.6 and frames past max_frame_index 2, CFG on, two
    streams; the bound of the clip above. The runtime advances ``count`` by tokens as ever."""
    artifact, model = stationary_artifact
    backend = OrtBackend(artifact, threads=1)
    assert (backend.config.decay, backend.config.max_frame_index) == (0.6, 2)
    kw = dict(labels=[3, 7], frames=4, steps=2, cfg_scale=2.0, seed=5)
    ours, reference = generate(backend, **kw), generate(model, **kw)
    per_frame = [psnr(ours[:, f], reference[:, f]) for f in range(4)]
    assert min(per_frame) >= PSNR_MIN_DB, per_frame


@pytest.fixture(scope="module")
def uniform_artifact(tmp_path_factory):
    """An fp32 artifact of the ``tiny`` preset (decay 1, unbounded index; random weights)."""
    from pomexport.export.pipeline import build

    out = tmp_path_factory.mktemp("uniform") / "artifact"
    return build("tiny", out, precision="fp32", backend="ort").artifact


def test_an_artifact_written_before_the_stationary_state_runs_unchanged(uniform_artifact, tmp_path):
    """A manifest config without ``decay``/``max_frame_index`` (an artifact written before issue
    18) loads as decay 1, unbounded, and generates exactly what the same graph does with them."""
    root = _copy(uniform_artifact, tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    config = manifest["model"]["config"]
    assert (config.pop("decay"), config.pop("max_frame_index")) == (1.0, None)
    write_manifest(root, manifest)
    old, new = OrtBackend(root, threads=1), OrtBackend(uniform_artifact, threads=1)
    assert old.config == new.config
    assert (old.config.decay, old.config.max_frame_index) == (1.0, None)
    kw = dict(labels=[2], frames=3, steps=2, cfg_scale=2.0, seed=1)
    assert torch.equal(generate(old, **kw), generate(new, **kw))


def _collect(frames_iter, clips: dict) -> None:
    for frame in frames_iter:
        clips.setdefault(frame.stream, {})[frame.index] = frame.latent


def _alone(backend, stream: int, label: int, frames: int, **kw) -> torch.Tensor:
    gen = VideoGenerator(backend, slots=1, **kw)
    gen.start(0, label, seed=11, stream=stream)
    return torch.stack([f.latent for f in gen.stream(frames)])


def test_streams_in_a_batch_equal_streams_alone(backend):
    """Continuous batching on ORT: a stream joins mid-way, a slot is reset and reused."""
    kw = dict(steps=2, cfg_scale=2.0)
    gen = VideoGenerator(backend, slots=3, **kw)  # 6 rows with CFG: within the batch range
    clips: dict = {}
    gen.start(0, label=1, seed=11, stream=0)
    gen.start(1, label=4, seed=11, stream=1)
    _collect(gen.stream(2), clips)
    gen.start(2, label=7, seed=11, stream=2)  # joins while 0 and 1 are at frame 2
    _collect(gen.stream(2), clips)
    gen.reset(0)
    gen.start(0, label=2, seed=11, stream=3)  # reused slot: starts from an empty state
    _collect(gen.stream(2), clips)

    expected = {0: (1, 4), 1: (4, 6), 2: (7, 4), 3: (2, 2)}  # stream: (label, frames)
    for stream, (label, n) in expected.items():
        batched = torch.stack([clips[stream][i] for i in range(n)])
        alone = _alone(backend, stream, label, n, **kw)
        assert (batched - alone).abs().max().item() <= STREAM_ATOL, stream


def test_bindings_are_made_once_per_buffer_set(ort_artifact):
    """Four bindings (read A|B x write scratch|other) serve every step of a clip, and the
    outputs land in the generator's own buffers."""
    backend = OrtBackend(ort_artifact[0], threads=1)
    gen = VideoGenerator(backend, slots=1, steps=3, cfg_scale=1.0)
    v_buffer = gen.io.v.data_ptr()
    gen.run([2], frames=5)
    assert len(backend._bindings) == 4
    assert gen.io.v.data_ptr() == v_buffer and gen.io.v.abs().sum() > 0


def test_misfit_buffers_are_refused_before_the_run(backend):
    from pomexport.errors import StateError
    from pomexport.runtime.state import StateBuffers

    io, state = backend.allocate(2), StateBuffers(backend.config, 2, backend.device)
    with pytest.raises(StateError, match="must not alias"):
        backend.step(io, state.read, state.count, state.read)
    half = dataclasses.replace(io, x_t=io.x_t.half())
    with pytest.raises(StateError, match="x_t is torch.float16"):
        backend.step(half, state.read, state.count, state.scratch)
    strided = state.read.transpose(0, 1).contiguous().transpose(0, 1)  # same shape, not contiguous
    with pytest.raises(StateError, match="contiguous"):
        backend.step(io, strided, state.count, state.scratch)


def test_batch_outside_the_artifact_range_is_refused(backend, ort_artifact):
    hi = ort_artifact[0].batch[2]
    with pytest.raises(ConfigError, match=f"outside the artifact's range 1..{hi}"):
        VideoGenerator(backend, slots=hi, cfg_scale=2.0)


def test_plugin_only_artifact_is_refused(ort_artifact, tmp_path):
    root = _copy(ort_artifact[0], tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["flavors"]["portable"]
    (root / PORTABLE).unlink()
    write_manifest(root, manifest)
    with pytest.raises(ArtifactError, match="only the plugin flavor"):
        OrtBackend(root)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: bytes(len(b) // 2) + b[len(b) // 2 :], "not a readable ONNX file"),
        (lambda b: b.replace(b"MatMul", b"MatMuX"), "ONNX Runtime cannot load it"),
    ],
    ids=["garbled-protobuf", "unknown-op"],
)
def test_corrupted_onnx_is_a_hash_error_then_a_load_error(ort_artifact, tmp_path, corrupt, message):
    """Flipped bytes break the manifest hash; re-signed, the file itself is refused."""
    root = _copy(ort_artifact[0], tmp_path)
    data = (root / PORTABLE).read_bytes()
    (root / PORTABLE).write_bytes(corrupt(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        OrtBackend(root)
    write_manifest(root, json.loads((root / "manifest.json").read_text()))
    with pytest.raises(ArtifactError, match=message) as error:
        OrtBackend(root)
    assert "\n" not in str(error.value)


def test_choose_backend(ort_artifact):
    root = ort_artifact[0].root
    assert choose_backend(root).backend in ("ort", "ort-cuda")
    assert choose_backend(root, device="cpu").backend == "ort"
    assert choose_backend("tiny").backend == "torch"
    with pytest.raises(ConfigError, match="not torch weights"):
        choose_backend(root, "torch")
    assert load_backend(root / "manifest.json", "ort").name == "ort-cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not _GPU or CUDA_EP not in _EPS, reason="needs onnxruntime-gpu and a CUDA GPU")
def test_cuda_ep_matches_cpu(ort_artifact, backend):
    kw = dict(labels=[1, 2], frames=4, steps=3, cfg_scale=2.0, seed=2)
    gpu = generate(OrtBackend(ort_artifact[0], "ort-cuda"), **kw)
    cpu = generate(backend, **kw)
    assert psnr(gpu, cpu) >= PSNR_MIN_DB


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not _GPU or TRT_EP not in _EPS, reason="needs TensorRT EP and a CUDA GPU")
def test_tensorrt_ep_matches_torch(ort_artifact, model, tmp_path):
    trt = OrtBackend(ort_artifact[0], "ort-trt", trt_cache=tmp_path / "trt")
    kw = dict(labels=[1], frames=4, steps=3, cfg_scale=2.0, seed=2)
    assert psnr(generate(trt, **kw), generate(TorchBackend(model), **kw)) >= PSNR_MIN_DB
    assert any((tmp_path / "trt").iterdir())  # the engine cache is where we said
    assert load_artifact(ort_artifact[0].root)  # ... and not inside the verified artifact
