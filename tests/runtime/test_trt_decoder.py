"""The decoder stage on its TensorRT engines (runtime/trt_decoder.py, runtime/decoding.py;
issue 21).

On any machine: which recorded decoder plans match a (TensorRT, GPU, SM) target — the
records written here by hand, the plans dummy bytes — and what ``artifact_decoder`` picks for
a TensorRT step backend (engines for every role: TrtDecoder; one missing or no TensorRT: ONNX
Runtime's CUDA EP, logged with the missing plan and the build command), with the two
decoders' constructors stubbed. With TensorRT and a GPU: engines built into a copy of the
decoder artifacts, decoded through TrtDecoder and compared with OrtDecoder on the CPU.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys

import pytest
import torch

from pomexport.errors import BuildError
from pomexport.export.artifact import edit_artifact, load_artifact
from pomexport.export.artifact.decoder import KEY
from pomexport.export.artifact.engines import EngineKey, engine_record
from pomexport.runtime import decoding
from pomexport.runtime import trt_decoder as td
from pomexport.runtime.ort_decoder import OrtDecoder

TRT, GPU, SM = "10.3.0.26", "NVIDIA H100 80GB HBM3", 90
TARGET = (TRT, GPU, SM)


def plan_name(role: str) -> str:
    return f"decoder/{role}-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan"


def with_records(artifact, roles, tmp_path, sha: str | None = None):
    """A copy of ``artifact`` whose decoder entry records an engine (dummy bytes) for each
    of ``roles`` built for TARGET from the role's graph (or from a graph of hash ``sha``)."""
    root = shutil.copytree(artifact.root, tmp_path / "art")
    with edit_artifact(root) as draft:
        entry = dict(draft.manifest[KEY])
        records = {}
        for role in roles:
            graph_sha = sha or draft.entry(f"decoder/{role}.onnx")["sha256"]
            key = EngineKey.create(graph_sha, TRT, GPU, SM, {})
            draft.write(plan_name(role), lambda tmp, role=role: tmp.write_bytes(role.encode()))
            records[plan_name(role)] = engine_record(key, "portable", "2026-12-07T00:00:00Z")
        entry["engines"] = records
        draft.manifest[KEY] = entry
    return load_artifact(root)


# -- which plans match: plain data, any machine ----------------------------------------------
def test_the_engines_of_every_role_match_their_target(decoders, tmp_path):
    artifact = with_records(decoders.artifact("wan"), ("first", "next"), tmp_path)
    found = td.find_decoder_engines(artifact, *TARGET)
    assert found.complete and found.missing == ()
    assert found.plans == {"first": plan_name("first"), "next": plan_name("next")}
    assert artifact.read_verified(found.plans["next"]) == b"next"


@pytest.mark.parametrize(
    "target",
    [("10.4.0.1", GPU, SM), (TRT, "NVIDIA L4", SM), (TRT, GPU, 89)],
    ids=["other-tensorrt", "other-gpu", "other-sm"],
)
def test_engines_of_another_target_do_not_match(decoders, tmp_path, target):
    artifact = with_records(decoders.artifact("wan"), ("first", "next"), tmp_path)
    found = td.find_decoder_engines(artifact, *target)
    assert not found.complete and found.plans == {}
    assert [e.role for e in found.missing] == ["first", "next"]
    assert all(e.plan_name not in artifact.files for e in found.missing)


def test_a_missing_role_is_named(decoders, tmp_path):
    artifact = with_records(decoders.artifact("wan"), ("first",), tmp_path)
    found = td.find_decoder_engines(artifact, *TARGET)
    assert not found.complete and found.plans == {"first": plan_name("first")}
    assert [e.plan_name for e in found.missing] == [plan_name("next")]


def test_an_engine_of_another_graph_does_not_match(decoders, tmp_path):
    """Same name, listed and hashed, but recorded for other graph bytes: stale."""
    artifact = with_records(decoders.artifact("kl"), ("decode",), tmp_path, sha="0" * 64)
    found = td.find_decoder_engines(artifact, *TARGET)
    assert found.plans == {} and [e.role for e in found.missing] == ["decode"]


def test_an_artifact_without_engines_has_none(decoders):
    found = td.find_decoder_engines(decoders.artifact("kl"), *TARGET)
    assert [e.plan_name for e in found.missing] == [plan_name("decode")]


# -- what artifact_decoder picks (both decoders stubbed) -------------------------------------
@pytest.fixture
def picks(monkeypatch):
    """Stub TensorRT's target and both decoders' constructors: each records what it got."""
    made = []
    monkeypatch.setattr(td, "tensorrt_target", lambda device: TARGET)
    monkeypatch.setattr(
        td.TrtDecoder,
        "from_artifact",
        classmethod(lambda cls, artifact, plans, device=0: made.append(("trt", plans)) or "trt"),
    )
    monkeypatch.setattr(
        OrtDecoder,
        "from_artifact",
        classmethod(lambda cls, artifact, backend, threads=None: made.append(backend) or "ort"),
    )
    return made


@pytest.mark.parametrize("backend", ["trt", "ort-trt"])
def test_a_tensorrt_backend_decodes_on_matching_engines(decoders, tmp_path, picks, backend):
    artifact = with_records(decoders.artifact("wan"), ("first", "next"), tmp_path)
    assert decoding.artifact_decoder(artifact, backend) == "trt"
    assert picks == [("trt", {"first": plan_name("first"), "next": plan_name("next")})]


def test_a_tensorrt_backend_decodes_on_engines_recorded_in_device_json(decoders, tmp_path, picks):
    """Plans built on the device (the bundle's build.sh: device.json, the manifest as shipped;
    docs/design.md §6.1) are picked like the manifest's."""
    from pomexport.export.artifact.device import record_device_files
    from pomexport.export.engine.decoder_engine import decoder_engine_plan

    root = shutil.copytree(decoders.artifact("wan").root, tmp_path / "art")
    files, records = {}, {}
    for e in decoder_engine_plan(load_artifact(root), *TARGET):
        files[e.plan_name] = e.role.encode()
        records[e.plan_name] = engine_record(e.key, "portable", "2026-12-07T00:00:00Z")
    record_device_files(root, files, records, trusted=[])
    shipped = json.loads((root / "manifest.json").read_text())["files"]
    assert plan_name("first") not in shipped and plan_name("next") not in shipped
    artifact = load_artifact(root)
    assert decoding.artifact_decoder(artifact, "trt") == "trt"
    assert picks == [("trt", {"first": plan_name("first"), "next": plan_name("next")})]


def test_a_missing_engine_falls_back_to_the_cuda_ep_and_says_how_to_build_it(
    decoders, tmp_path, picks, caplog
):
    artifact = with_records(decoders.artifact("wan"), ("first",), tmp_path)
    with caplog.at_level(logging.INFO, logger="pomexport.runtime.decoding"):
        assert decoding.artifact_decoder(artifact, "trt") == "ort"
    assert picks == ["ort-cuda"]
    assert plan_name("next") in caplog.text and plan_name("first") not in caplog.text
    assert "`pomexport build MODEL --decoder DIR --backend trt`" in caplog.text


def test_without_tensorrt_a_tensorrt_backend_decodes_on_the_cuda_ep(
    decoders, tmp_path, picks, monkeypatch, caplog
):
    def missing(device):
        raise BuildError("TensorRT is not installed (test)")

    monkeypatch.setattr(td, "tensorrt_target", missing)
    artifact = with_records(decoders.artifact("wan"), ("first", "next"), tmp_path)
    with caplog.at_level(logging.INFO, logger="pomexport.runtime.decoding"):
        assert decoding.artifact_decoder(artifact, "trt") == "ort"
    assert picks == ["ort-cuda"] and "TensorRT is not installed (test)" in caplog.text


@pytest.mark.parametrize(
    ("backend", "ep"), [("ort", "ort"), ("ort-cpu", "ort"), ("ort-cuda", "ort-cuda")]
)
def test_the_onnx_runtime_backends_never_look_for_engines(decoders, tmp_path, picks, backend, ep):
    artifact = with_records(decoders.artifact("wan"), ("first", "next"), tmp_path)
    assert decoding.artifact_decoder(artifact, backend) == "ort"
    assert picks == [ep]


def test_the_module_imports_without_tensorrt():
    code = "import sys, pomexport.runtime.trt_decoder; assert 'tensorrt' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- with TensorRT and a GPU --------------------------------------------------------------
def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)  # RGB range [-1, 1]: peak 2


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize(("name", "precision"), [("kl", "fp32"), ("wan", "fp32"), ("wan", "fp16")])
def test_trt_decoder_matches_the_cpu_decoder(trt, decoders, tmp_path, name, precision):
    """Engines built into a copy, picked by artifact_decoder for ``trt``; two interleaved
    streams (their own ping-pong caches) against OrtDecoder on the CPU, frame by frame; no
    GPU memory allocated per frame once both streams have started."""
    from pomexport.export.artifact import ArtifactDraft
    from pomexport.export.engine.decoder_engine import decoder_engines_from_onnx

    source = decoders.artifact(name, precision)
    copy = load_artifact(shutil.copytree(source.root, tmp_path / "art"))
    draft = ArtifactDraft(copy.root, copy.manifest)
    decoder_engines_from_onnx(draft)
    draft.commit()
    artifact = load_artifact(copy.root)
    ours, ref = decoding.artifact_decoder(artifact, "trt"), OrtDecoder.from_artifact(artifact)
    assert isinstance(ours, td.TrtDecoder) and ours.rgb_shape == ref.rgb_shape
    cfg, gen = artifact.config, torch.Generator().manual_seed(0)
    for decoder in (ours, ref):
        for stream in (0, 1):
            decoder.start(stream)
    worst, low, allocated = 0.0, math.inf, None
    for frame in range(4):
        for stream in (0, 1):
            latent = torch.randn(cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
            got, want = ours.decode(stream, latent), ref.decode(stream, latent)
            assert got.shape == want.shape and got.dtype == torch.float32
            worst, low = max(worst, float((got - want).abs().max())), min(low, psnr(got, want))
        if frame == 1:
            allocated = torch.cuda.memory_allocated()
    assert torch.cuda.memory_allocated() == allocated
    if precision == "fp32":
        assert worst <= 1e-4, worst
    else:
        assert low >= 40.0, low
