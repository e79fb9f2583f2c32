"""The engine builder's recording step on a committed artifact (docs/design.md §6.1): the plan
and timing cache go into device.json, manifest.json and manifest.sig stay as shipped. No
TensorRT: the builder's own ``_store`` records bytes; ``_check_device_key`` is what runs
before a build."""

from __future__ import annotations

import shutil

import pytest

from pomexport.errors import ConfigError
from pomexport.export.artifact import TIMING_CACHE, load_artifact
from pomexport.export.artifact.device import DEVICE, DEVICE_KEY_ENV, DEVICE_SIGNATURE
from pomexport.export.artifact.engines import EngineKey, profile_shapes
from pomexport.export.artifact.signing import ENV, MANIFEST_SIGNATURE, keygen, sign_artifact
from pomexport.export.engine.builder import EngineFromOnnx


def _key(artifact) -> EngineKey:
    onnx = artifact.files[artifact.manifest["flavors"]["portable"]]["sha256"]
    return EngineKey.create(onnx, "10.3.0.26", "NVIDIA Test GPU", 87, profile_shapes(artifact))


def test_builder_records_into_device_json_signed_by_the_device_key(
    tmp_path, ort_artifact, monkeypatch
):
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "art")
    packager, device = keygen(tmp_path / "packager"), keygen(tmp_path / "device")
    sign_artifact(root, packager[0])
    shipped = [(root / n).read_bytes() for n in ("manifest.json", MANIFEST_SIGNATURE)]
    monkeypatch.setenv(ENV, f"{packager[1]}:{device[1]}")
    monkeypatch.delenv(DEVICE_KEY_ENV, raising=False)
    builder = EngineFromOnnx(root, progress=False)
    with pytest.raises(ConfigError, match="no device key"):
        builder._check_device_key()  # before any build: the record would be refused
    monkeypatch.setenv(DEVICE_KEY_ENV, str(device[0]))
    builder._check_device_key()
    key = _key(builder.artifact)
    artifact = builder._store(key, "portable", b"fake plan", b"fake timing cache")
    assert [(root / n).read_bytes() for n in ("manifest.json", MANIFEST_SIGNATURE)] == shipped
    assert (root / DEVICE).is_file() and (root / DEVICE_SIGNATURE).is_file()
    assert artifact.path(key.plan_name).read_bytes() == b"fake plan"
    reloaded = load_artifact(root)  # the trusted keys of the environment
    assert {key.plan_name, TIMING_CACHE} <= set(reloaded.files)
    assert reloaded.manifest["engines"][key.plan_name]["digest"] == key.digest()
    # What --backend auto reads to pick TensorRT sees the device-recorded engine too.
    from pomexport.runtime.loading import _recorded_engines

    assert _recorded_engines(root) == [key.plan_name]


def test_a_builds_draft_keeps_the_engine_in_its_manifest(tmp_path, ort_artifact, monkeypatch):
    from pomexport.export.artifact import ArtifactDraft

    monkeypatch.delenv(ENV, raising=False)
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "art")
    draft = ArtifactDraft.of(load_artifact(root))
    builder = EngineFromOnnx(draft, progress=False)
    builder._check_device_key()  # a draft needs no device key: its manifest lists the engine
    key = _key(builder.artifact)
    builder._store(key, "portable", b"fake plan", b"fake timing cache")
    draft.commit()
    assert not (root / DEVICE).exists()
    assert key.plan_name in load_artifact(root).manifest["engines"]
