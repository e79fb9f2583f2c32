"""export/pipeline.py: a verified artifact, written atomically; TensorRT refused clearly where
it is missing."""

from __future__ import annotations

import os
import shutil

import pytest

from pomexport.errors import BuildError, ConfigError, ExportError
from pomexport.export.artifact import MANIFEST, PLUGIN, PORTABLE, load_artifact
from pomexport.export.pipeline import build, build_engine, tensorrt_missing

NO_TENSORRT = tensorrt_missing() is not None


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_build_writes_a_verified_artifact_with_both_flavors(ort_artifact):
    artifact, name = ort_artifact
    again = load_artifact(artifact.root)  # hashes verified
    assert again.flavors == ("portable", "plugin") and again.precision == "fp32"
    assert {PORTABLE, PLUGIN} <= set(again.files) and again.model_name == name
    assert _leftovers(artifact.root.parent) == []  # no staging directory left behind
    umask = os.umask(0)
    os.umask(umask)
    assert artifact.root.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


def test_a_failed_rebuild_leaves_the_old_artifact_whole(ort_artifact, tmp_path, monkeypatch):
    out = shutil.copytree(ort_artifact[0].root, tmp_path / "out")
    before = (out / MANIFEST).read_text()

    def half_export(model, staging, *args, **kwargs):
        (staging / PORTABLE).write_bytes(b"half a model")
        raise ExportError("the exporter failed half-way")

    monkeypatch.setattr("pomexport.export.api.export_model", half_export)
    with pytest.raises(ExportError, match="half-way"):
        build("tiny", out, precision="fp32", backend="ort")
    assert (out / MANIFEST).read_text() == before
    assert load_artifact(out).files == ort_artifact[0].files
    assert _leftovers(tmp_path) == []


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT is installed here")
def test_trt_without_tensorrt_fails_before_exporting(tmp_path):
    with pytest.raises(BuildError, match="TensorRT is not installed"):
        build("tiny", tmp_path / "out", backend="trt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not NO_TENSORRT, reason="TensorRT is installed here")
def test_build_engine_hook_says_tensorrt_is_missing(ort_artifact):
    with pytest.raises(BuildError, match="TensorRT is not installed"):
        build_engine(ort_artifact[0])


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="precision must be one of"):
        build("tiny", tmp_path / "a", precision="int4")
    with pytest.raises(ConfigError, match="backend must be one of"):
        build("tiny", tmp_path / "a", backend="tvm")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="not empty and not a pomexport artifact"):
        build("tiny", tmp_path / "foreign", backend="ort")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BuildError, match="not a directory"):
        build("tiny", tmp_path / "file", backend="ort")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "foreign"]


def test_an_int8_build_writes_the_manifest_once_and_hashes_each_file_once(
    tmp_path, monkeypatch, write_counts
):
    """Issue 19: `pomexport build --precision int8` (export -> calibration -> commit) stages
    once: one manifest.json write, one hash per file, where each stage used to reload (hash
    every file) and rewrite the manifest. A small capture keeps the calibration short."""
    from pomexport.calibration import CalibrationOptions, CaptureSettings

    capture = CaptureSettings(samples=32, frames=2, steps=2, seeds=(0,))
    out = tmp_path / "int8"
    result = build("tiny", out, "int8", "ort", calibration=CalibrationOptions(capture=capture))
    monkeypatch.undo()
    manifests, hashed = write_counts.manifests, write_counts.hashed
    assert result.artifact.precision == "int8" and len(manifests) == 1
    files = load_artifact(out).files  # verified here, after the counts
    assert sorted(hashed) == sorted(name.rsplit("/", 1)[-1] for name in files), hashed


def test_an_unsigned_build_with_keys_configured_is_built_and_warned_of(
    tmp_path, monkeypatch, caplog
):
    """Keys configured for loaders (POMEXPORT_TRUSTED_KEYS) once failed every unsigned build
    at its own read-back, after the whole export, with the artifact already in place."""
    import logging

    from pomexport.errors import ArtifactError
    from pomexport.export.artifact import signing

    _, public = signing.keygen(tmp_path / "k")
    monkeypatch.setenv(signing.ENV, str(public))
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="pomexport.export.pipeline"):
        result = build("tiny", out, precision="fp32", backend="ort")
    assert result.artifact.precision == "fp32" and result.artifact.root == out
    (warning,) = [r.getMessage() for r in caplog.records if "unsigned" in r.getMessage()]
    assert "1 trusted key(s) are configured" in warning and "--sign" in warning
    with pytest.raises(ArtifactError, match="unsigned, and 1 trusted key"):
        load_artifact(out)  # its loaders enforce the keys
