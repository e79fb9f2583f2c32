"""device.json's decoder plans (issue 21 on the device; docs/design.md §6.1, §6.2): the bundle's
build.sh builds the decoder stage's engines there and records them beside the manifest, so
the loaders accept ``decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan`` of one of the artifact's
decoder roles, never a name the manifest lists, hashed like every device file, signed when keys
are trusted; their records join the decoder entry's, where :func:`find_decoder_engines` looks.
No TensorRT: the plans are bytes, the records written as build.sh and the builder write them.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import edit_artifact, load_artifact
from pomexport.export.artifact.decoder import KEY
from pomexport.export.artifact.device import DEVICE, DEVICE_SIGNATURE, record_device_files
from pomexport.export.artifact.engines import EngineKey, engine_record
from pomexport.export.artifact.signing import (
    ENV,
    keygen,
    load_private_key,
    load_public_key,
    sign_artifact,
    signature_document,
)
from pomexport.export.engine.decoder_engine import decoder_engine_plan
from pomexport.runtime.trt_decoder import find_decoder_engines

# What build.sh parses from trtexec's log on an Orin (no build number in the version).
TARGET = ("10.3.0", "Orin", 87)
FIRST, NEXT = "decoder/first-orin-sm87-trt10.3.0.plan", "decoder/next-orin-sm87-trt10.3.0.plan"


@pytest.fixture
def wan(decoders, tmp_path, monkeypatch):
    """A private copy of the wan-stream decoder artifact (no engines), no keys configured."""
    monkeypatch.delenv(ENV, raising=False)
    return shutil.copytree(decoders.artifact("wan").root, tmp_path / "art")


def _records(root, graph_sha: str | None = None) -> tuple[dict[str, bytes], dict[str, dict]]:
    """Plans (stand-in bytes) and engine records for TARGET, as a device build makes them."""
    files, records = {}, {}
    for engine in decoder_engine_plan(load_artifact(root, verify=False), *TARGET):
        key = engine.key if graph_sha is None else EngineKey.create(graph_sha, *TARGET, {})
        files[engine.plan_name] = f"plan {engine.role}".encode()
        records[engine.plan_name] = engine_record(key, "portable", "2026-12-07T00:00:00Z")
    return files, records


def _write_record(root, files: dict[str, bytes], records: dict[str, dict]) -> bytes:
    """device.json by hand (what build.sh's register step writes): files written and listed."""
    listed = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        listed[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    doc = {
        "format": "pomexport-device-files",
        "format_version": 1,
        "manifest_sha256": hashlib.sha256((root / "manifest.json").read_bytes()).hexdigest(),
        "files": listed,
        "engines": records,
    }
    data = json.dumps(doc, indent=2).encode()
    (root / DEVICE).write_bytes(data)
    return data


def test_recorded_decoder_plans_are_loaded_and_chosen(wan):
    shipped = (wan / "manifest.json").read_bytes()
    files, records = _records(wan)
    assert sorted(files) == [FIRST, NEXT]
    record_device_files(wan, files, records, trusted=[])
    assert (wan / "manifest.json").read_bytes() == shipped
    artifact = load_artifact(wan)  # every hash checked, the device's files included
    assert artifact.read_verified(NEXT) == b"plan next"
    assert artifact.manifest[KEY]["engines"] == records  # the decoder entry's, not the step's
    assert artifact.engines == [] and not set(artifact.manifest.get("engines", {})) & set(files)
    # The runtime's full version string matches the release build.sh recorded.
    found = find_decoder_engines(artifact, "10.3.0.26", "Orin", 87)
    assert found.complete and found.plans == {"first": FIRST, "next": NEXT}
    assert not find_decoder_engines(artifact, "10.3.0", "Orin", 72).plans  # another target


def test_a_second_record_keeps_the_decoder_plans(wan):
    files, records = _records(wan)
    record_device_files(wan, files, records, trusted=[])
    record_device_files(wan, {"plugins/libpomexport_plugins.so": b"\x7fELF"}, trusted=[])
    doc = json.loads((wan / DEVICE).read_text())
    assert {FIRST, NEXT} <= set(doc["files"]) and doc["engines"] == records
    assert find_decoder_engines(load_artifact(wan), *TARGET).complete


def test_plans_of_an_earlier_graph_or_without_records_are_not_chosen(wan):
    files, records = _records(wan, graph_sha="0" * 64)
    _write_record(wan, files, records)
    found = find_decoder_engines(load_artifact(wan), *TARGET)
    assert found.plans == {} and [e.plan_name for e in found.missing] == [FIRST, NEXT]
    _write_record(wan, files, {})
    assert find_decoder_engines(load_artifact(wan), *TARGET).plans == {}


def test_a_device_record_replaces_a_shipped_record_of_an_unshipped_plan(wan):
    """A bundled manifest may still carry the packager's records; the device's file is
    described by the device's record only."""
    files, records = _records(wan)
    with edit_artifact(wan) as draft:
        draft.manifest[KEY] = {**draft.manifest[KEY], "engines": _records(wan, "0" * 64)[1]}
    _write_record(wan, files, records)
    assert find_decoder_engines(load_artifact(wan), *TARGET).complete
    _write_record(wan, files, {})  # listed without a record: the shipped one is not its record
    assert find_decoder_engines(load_artifact(wan), *TARGET).plans == {}


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        (
            "decoder/decode-orin-sm87-trt10.3.0.plan",
            r"device\.json: 'decoder/decode-orin-sm87-trt10\.3\.0\.plan' is not the engine of a "
            r"decoder role of this artifact \(roles: first, next\)",
        ),
        ("decoder/first.onnx", r"device\.json: may list only plugins/\*\.so, engines/\*\.plan"),
        ("decoder/first-.plan", r"device\.json: may list only"),
        ("decoder/x/first-orin.plan", r"device\.json: may list only"),
        ("decoder/../first-orin.plan", r"device\.json: may list only"),
    ],
)
def test_a_name_of_no_decoder_role_is_refused(wan, name, refusal):
    files, records = _records(wan)
    _write_record(wan, files, records)
    doc = json.loads((wan / DEVICE).read_text())
    doc["files"][name] = {"sha256": "0" * 64, "bytes": 1}
    (wan / DEVICE).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=refusal):
        load_artifact(wan)
    (wan / DEVICE).unlink()
    with pytest.raises(ArtifactError, match=refusal):  # the writer refuses it too
        record_device_files(wan, {name: b"x"}, trusted=[])
    assert not (wan / DEVICE).exists()


def test_an_artifact_without_a_decoder_records_no_decoder_plan(ort_artifact, tmp_path):
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "art")
    with pytest.raises(ArtifactError, match=r"\(it has no decoder stage\)"):
        record_device_files(root, {FIRST: b"plan"}, trusted=[])


def test_a_name_the_manifest_lists_is_refused(wan):
    """A decoder plan shipped in the manifest (built by pomexport build) cannot be replaced."""
    files, records = _records(wan)
    with edit_artifact(wan) as draft:
        draft.write(FIRST, lambda tmp: tmp.write_bytes(b"shipped plan"))
    _write_record(wan, {NEXT: files[NEXT]}, records)
    load_artifact(wan)
    doc = json.loads((wan / DEVICE).read_text())
    doc["files"][FIRST] = {"sha256": "0" * 64, "bytes": 4}
    (wan / DEVICE).write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=rf"device\.json: '{FIRST}' is already listed"):
        load_artifact(wan)
    (wan / DEVICE).unlink()
    with pytest.raises(ArtifactError, match="shipped in manifest.json; a device build cannot"):
        record_device_files(wan, {FIRST: b"x"}, trusted=[])


def test_a_changed_plan_is_refused(wan):
    files, records = _records(wan)
    _write_record(wan, files, records)
    (wan / NEXT).write_bytes(b"plan NEXT")  # same size, other bytes
    with pytest.raises(ArtifactError, match=r"decoder/next-orin-sm87-trt10\.3\.0\.plan: sha256"):
        load_artifact(wan)


def test_with_trusted_keys_the_record_must_be_signed_by_one(wan, tmp_path):
    ops, dev = keygen(tmp_path / "ops"), keygen(tmp_path / "dev")
    sign_artifact(wan, ops[0])
    keys = [load_public_key(ops[1]), load_public_key(dev[1])]
    files, records = _records(wan)
    data = _write_record(wan, files, records)
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 2 trusted key"):
        load_artifact(wan, trusted=keys)
    signature = signature_document(data, load_private_key(dev[0]))
    (wan / DEVICE_SIGNATURE).write_bytes(signature)
    assert find_decoder_engines(load_artifact(wan, trusted=keys), *TARGET).complete
    with pytest.raises(ArtifactError, match=r"device\.json: signed by key [0-9a-f]{16}, which"):
        load_artifact(wan, trusted=keys[:1])
