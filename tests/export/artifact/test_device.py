"""export/artifact/device.py's writer (docs/design.md §6.1): files built on the device are
recorded in device.json beside a manifest that stays byte-identical (its signature holds),
bound to it, signed with the device key when keys are trusted. No TensorRT: the "plan" is
bytes, recorded through the same function the engine builder calls."""

from __future__ import annotations

import json
import shutil

import pytest

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact import TIMING_CACHE, ArtifactDraft, edit_artifact, load_artifact
from pomexport.export.artifact.device import (
    DEVICE,
    DEVICE_KEY_ENV,
    DEVICE_SIGNATURE,
    record_device_files,
)
from pomexport.export.artifact.engines import (
    EngineKey,
    cached_engine,
    engine_record,
    profile_shapes,
)
from pomexport.export.artifact.signing import (
    ENV,
    MANIFEST_SIGNATURE,
    check_signature,
    keygen,
    load_public_key,
    sign_artifact,
)

PLAN = b"not a real plan: the recording step only hashes bytes"


@pytest.fixture
def signed(tmp_path, ort_artifact, monkeypatch):
    """(artifact root signed by the packager, packager key pair, device key pair)."""
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.delenv(DEVICE_KEY_ENV, raising=False)
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "art")
    (tmp_path / "keys").mkdir()
    packager = keygen(tmp_path / "keys" / "packager")
    device = keygen(tmp_path / "keys" / "device")
    sign_artifact(root, packager[0])
    return root, packager, device


def _engine(root) -> tuple[EngineKey, dict[str, bytes], dict[str, dict]]:
    artifact = load_artifact(root, verify=False, trusted=[])
    onnx = artifact.files[artifact.manifest["flavors"]["portable"]]["sha256"]
    key = EngineKey.create(onnx, "10.3.0.26", "NVIDIA Test GPU", 87, profile_shapes(artifact))
    files = {key.plan_name: PLAN, TIMING_CACHE: b"timing"}
    return key, files, {key.plan_name: engine_record(key, "portable", "2026-12-07T00:00:00Z")}


def _shipped(root) -> tuple[bytes, bytes]:
    return (root / "manifest.json").read_bytes(), (root / MANIFEST_SIGNATURE).read_bytes()


def test_unsigned_record_keeps_the_signed_manifest_and_binds_to_it(signed):
    root, packager, _ = signed
    before = _shipped(root)
    key, files, records = _engine(root)
    record_device_files(root, files, records, trusted=[])
    assert _shipped(root) == before
    check_signature("manifest.json", before[0], before[1], [load_public_key(packager[1])])
    doc = json.loads((root / DEVICE).read_text())
    assert set(doc["files"]) == {key.plan_name, TIMING_CACHE} and doc["engines"] == records
    assert not (root / DEVICE_SIGNATURE).exists()
    artifact = load_artifact(root, trusted=[])
    assert cached_engine(artifact, key) == root / key.plan_name  # reused while the key holds
    # The packager's key alone: the manifest verifies, the unsigned device record is refused.
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 1 trusted key"):
        load_artifact(root, trusted=[load_public_key(packager[1])])


def test_signed_by_the_device_key_is_accepted_unsigned_refused(signed, monkeypatch):
    root, packager, device = signed
    before = _shipped(root)
    keys = [load_public_key(packager[1]), load_public_key(device[1])]
    key, files, records = _engine(root)
    monkeypatch.setenv(DEVICE_KEY_ENV, str(device[0]))  # as build.sh takes it
    record_device_files(root, files, records, trusted=keys)
    assert _shipped(root) == before and (root / DEVICE_SIGNATURE).is_file()
    artifact = load_artifact(root, trusted=keys)
    assert key.plan_name in artifact.files and cached_engine(artifact, key) is not None
    (root / DEVICE_SIGNATURE).unlink()
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 2 trusted key"):
        load_artifact(root, trusted=keys)


def test_trusted_keys_without_a_trusted_device_key_write_nothing(signed):
    root, packager, device = signed
    keys = [load_public_key(packager[1])]
    _, files, records = _engine(root)
    with pytest.raises(ConfigError, match="trusted key.* but no device key") as e:
        record_device_files(root, files, records, trusted=keys)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="the device key's public key is not a trusted key"):
        record_device_files(root, files, records, trusted=keys, device_key=device[0])
    assert not (root / DEVICE).exists() and not (root / "engines").exists()


def test_a_second_record_keeps_the_first_and_never_replaces_shipped_files(signed):
    root, _, device = signed
    library = "plugins/libpomexport_plugins.so"
    record_device_files(root, {library: b"\x7fELF library"}, trusted=[], device_key=device[0])
    key, files, records = _engine(root)
    record_device_files(root, files, records, trusted=[], device_key=device[0])
    artifact = load_artifact(
        root, trusted=[load_public_key(device[1]), load_public_key(signed[1][1])]
    )
    assert {library, key.plan_name, TIMING_CACHE} <= set(artifact.files)
    with pytest.raises(ArtifactError, match=r"model\.onnx"):
        record_device_files(root, {"model.onnx": b"x"}, trusted=[])


def test_a_manifest_write_takes_the_record_into_the_manifest(signed):
    root, _, _ = signed
    key, files, records = _engine(root)
    record_device_files(root, files, records, trusted=[])
    with edit_artifact(root) as draft:
        draft.write("timing.cache", lambda tmp: tmp.write_bytes(b"edited"))
    assert not (root / DEVICE).exists() and not (root / MANIFEST_SIGNATURE).exists()
    artifact = load_artifact(root, trusted=[])
    assert cached_engine(artifact, key) == root / key.plan_name
    # Same for a draft committed over it (what tests/export/engine's GPU test does).
    record_device_files(root, {"engines/c-sm90-trt10.3.0.plan": b"c"}, trusted=[])
    draft = ArtifactDraft(root, load_artifact(root, trusted=[]).manifest)
    draft.manifest["batch"] = {"min": 1, "opt": 2, "max": 4}
    draft.commit()
    files = load_artifact(root, trusted=[]).files
    assert {key.plan_name, "engines/c-sm90-trt10.3.0.plan"} <= set(files)
    assert DEVICE not in files and not (root / DEVICE).exists()
