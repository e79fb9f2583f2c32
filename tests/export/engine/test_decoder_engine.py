"""TensorRT engines of the decoder stage (export/engine/decoder_engine.py, export/pipeline.py;
issue 21): the plan of what a build makes (names, keys) and the refusals without TensorRT on
any machine; the record in the decoder entry with the builder's TensorRT calls stubbed (no
TensorRT needed to check what is written); the real build with TensorRT and a GPU."""

from __future__ import annotations

import shutil

import pytest

from pomexport.errors import BuildError, ConfigError
from pomexport.export.artifact import ArtifactDraft, load_artifact
from pomexport.export.artifact.decoder import KEY
from pomexport.export.artifact.engines import ENGINE_RECORDS, engine_name
from pomexport.export.engine import decoder_engine as de
from pomexport.export.engine.builder import GpuTarget
from pomexport.export.pipeline import build

TRT, GPU, SM = "10.3.0.26", "NVIDIA H100 80GB HBM3", 90


@pytest.fixture
def wan_copy(decoders, tmp_path):
    return load_artifact(shutil.copytree(decoders.artifact("wan").root, tmp_path / "art"))


def test_the_plan_names_one_engine_per_graph(decoders):
    artifact = decoders.artifact("wan")
    engines = de.decoder_engine_plan(artifact, TRT, GPU, SM)
    assert [(e.role, e.onnx) for e in engines] == [
        ("first", "decoder/first.onnx"),
        ("next", "decoder/next.onnx"),
    ]
    for e in engines:
        assert e.plan_name == f"decoder/{e.role}-nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan"
        assert e.key.onnx_sha256 == artifact.files[e.onnx]["sha256"]
        assert e.key.profile == () and (e.key.trt_version, e.key.sm) == (TRT, SM)
        assert e.plan_name != engine_name(GPU, SM, TRT)  # never the step's plan
    (image,) = de.decoder_engine_plan(decoders.artifact("kl"), TRT, GPU, SM)
    assert image.role == "decode"


def test_without_tensorrt_the_build_refuses_before_exporting(decoders, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "pomexport.export.pipeline.tensorrt_missing", lambda: "TensorRT is not installed (test)"
    )
    out = tmp_path / "trt"
    with pytest.raises(BuildError, match="--backend trt: TensorRT is not installed"):
        build("wan-latent-tiny", out, "fp32", "trt", decoder=decoders.source("wan"))
    assert not out.exists()


def test_the_builder_says_tensorrt_is_not_installed(wan_copy, monkeypatch):
    def missing():
        raise BuildError(
            "TensorRT is not installed (the tensorrt Python package is not importable)"
        )

    monkeypatch.setattr(de, "import_tensorrt", missing)
    draft = ArtifactDraft(wan_copy.root, wan_copy.manifest)
    with pytest.raises(BuildError, match="TensorRT is not installed"):
        de.decoder_engines_from_onnx(draft)
    with pytest.raises(ConfigError, match="draft"):
        de.DecoderEnginesFromOnnx(wan_copy)


def test_engines_are_recorded_in_the_decoder_entry(wan_copy, monkeypatch):
    """TensorRT's part stubbed (a fixed plan), the rest real: written into the draft, listed
    and hashed at its commit, recorded under their keys, reused while the key matches."""
    builds = []
    monkeypatch.setattr(de, "import_tensorrt", lambda: type("trt", (), {"__version__": TRT}))
    monkeypatch.setattr(de, "gpu_target", lambda device: GpuTarget(device, GPU, SM))

    def fake_build(self, trt, path, device) -> bytes:
        builds.append(path.name)
        return f"plan of {path.name}".encode()

    monkeypatch.setattr(de.DecoderEnginesFromOnnx, "_build", fake_build)
    draft = ArtifactDraft(wan_copy.root, wan_copy.manifest)
    engines = de.decoder_engines_from_onnx(draft)
    draft.commit()
    artifact = load_artifact(wan_copy.root)  # every hash verified
    records = artifact.manifest[KEY]["engines"]
    assert sorted(records) == sorted(e.plan_name for e in engines) and builds == [
        "first.onnx",
        "next.onnx",
    ]
    for e in engines:
        assert artifact.path(e.plan_name).read_bytes() == f"plan of {e.role}.onnx".encode()
        assert records[e.plan_name]["digest"] == e.key.digest()
        assert records[e.plan_name]["flavor"] == "portable"
    assert ENGINE_RECORDS not in artifact.manifest and artifact.engines == []  # not the step's
    again = ArtifactDraft(artifact.root, artifact.manifest)
    de.decoder_engines_from_onnx(again)
    assert len(builds) == 2  # reused: same keys


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_the_decoder_engines_build_strongly_typed(trt, decoders, tmp_path):
    result = build(
        "wan-latent-tiny", tmp_path / "trt", "fp16", "trt", decoder=decoders.source("wan")
    )
    records = result.artifact.manifest[KEY]["engines"]
    assert len(records) == 2 and all(result.artifact.path(n).stat().st_size for n in records)
