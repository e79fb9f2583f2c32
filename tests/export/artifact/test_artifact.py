"""The artifact loader refuses tampered or escaping artifacts with one clear ArtifactError."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from pomexport.errors import ArtifactError
from pomexport.export.artifact import (
    MANIFEST,
    PORTABLE,
    build_manifest,
    load_artifact,
    write_manifest,
)
from pomexport.export.onnx_files import save_onnx
from pomexport.models import get_preset

# The step contract's I/O (load_artifact checks graph I/O against the manifest).
_IO = {
    "inputs": [("x_t", 1, 4), ("t", 1, 1), ("label", 7, 1), ("frame_index", 7, 1)]
    + [("state", 1, 3), ("count", 1, 1)],
    "outputs": [("v", 1, 4), ("state_out", 1, 3)],
}


def _small_model() -> onnx.ModelProto:
    """v = x_t, state_out = state, with a 4 KiB initializer (big enough to go external), the
    ``tiny`` preset's static I/O dims and its label table (the loader checks the config
    against both; the table is float_data, so it stays inline)."""
    from pomexport.export.artifact import io_contract

    cfg = get_preset("tiny")
    dims = {e["name"]: e["shape"] for es in io_contract(cfg, "float32").values() for e in es}
    w = numpy_helper.from_array(np.arange(1024, dtype=np.float32), "w")
    rows = [cfg.num_classes + 1, cfg.width]
    table = helper.make_tensor("model.label.weight", 1, rows, np.zeros(rows[0] * rows[1]))
    nodes = [
        helper.make_node("Identity", ["x_t"], ["v"]),
        helper.make_node("Identity", ["state"], ["state_out"]),
    ]
    inputs, outputs = (
        [helper.make_tensor_value_info(n, dtype, dims[n]) for n, dtype, _ in _IO[kind]]
        for kind in ("inputs", "outputs")
    )
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=[w, table])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _manifest() -> dict:
    return build_manifest(get_preset("tiny"), "tiny", "fp32", ["portable"], 18, (1, 1, 4))


def _write(root, external: bool = False):
    model = _small_model()
    if external:
        location = "model.onnx.data"
        onnx.save_model(model, str(root / PORTABLE), save_as_external_data=True, location=location)
    else:
        save_onnx(model, root / PORTABLE)
    write_manifest(root, _manifest())
    return root


def test_roundtrip(tmp_path):
    art = load_artifact(_write(tmp_path, external=True))
    assert art.onnx_path("portable") == tmp_path / PORTABLE
    assert set(art.files) == {PORTABLE, "model.onnx.data"}
    assert art.batch == (1, 1, 4) and art.config == get_preset("tiny")
    names = [i["name"] for i in art.inputs]
    assert names == ["x_t", "t", "label", "frame_index", "state", "count"]
    assert art.inputs[4]["shape"] == [4, "B", get_preset("tiny").state_width]


def test_hash_mismatch_refused(tmp_path):
    _write(tmp_path)
    raw = bytearray((tmp_path / PORTABLE).read_bytes())
    raw[-1] ^= 1  # same size, other bytes: only the hash can tell
    (tmp_path / PORTABLE).write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match=r"model\.onnx: sha256 mismatch"):
        load_artifact(tmp_path)


def test_size_mismatch_refused_before_hashing(tmp_path):
    _write(tmp_path)
    with open(tmp_path / PORTABLE, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match=r"model\.onnx: \d+ bytes but manifest\.json says"):
        load_artifact(tmp_path)


def test_read_verified_hashes_what_it_returns(tmp_path):
    art = load_artifact(_write(tmp_path))
    assert art.read_verified(PORTABLE) == (tmp_path / PORTABLE).read_bytes()
    # Swapped after the load-time check (a plan replaced while the app starts): refused.
    (tmp_path / PORTABLE).write_bytes(b"not the hashed model")
    with pytest.raises(ArtifactError, match=r"model\.onnx: sha256 does not match manifest"):
        art.read_verified(PORTABLE)


def test_external_data_outside_refused(tmp_path):
    root = tmp_path / "art"
    root.mkdir()
    _write(root, external=True)
    # Point the weights one level up (onnx itself refuses to write such a file: edit it).
    os.replace(root / "model.onnx.data", tmp_path / "outside.bin")
    model = onnx.load(str(root / PORTABLE), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = "../outside.bin"
    (root / PORTABLE).write_bytes(model.SerializeToString())
    (root / MANIFEST).unlink()
    write_manifest(root, _manifest())
    with pytest.raises(ArtifactError, match=r"model\.onnx: refusing path '\.\./outside\.bin'"):
        load_artifact(root)


def test_external_data_symlink_escape_refused(tmp_path):
    root = tmp_path / "art"
    root.mkdir()
    _write(root, external=True)
    os.replace(root / "model.onnx.data", tmp_path / "elsewhere.data")
    os.symlink(tmp_path / "elsewhere.data", root / "model.onnx.data")
    with pytest.raises(ArtifactError, match="leaves the artifact directory"):
        load_artifact(root)


@pytest.mark.parametrize("bad", ["../x.onnx", "/etc/passwd"])
def test_manifest_path_escape_refused(tmp_path, bad):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["files"][bad] = {"sha256": "0" * 64, "bytes": 0}
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="refusing path"):
        load_artifact(tmp_path)


def test_missing_manifest_and_file(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        load_artifact(tmp_path)
    _write(tmp_path)
    (tmp_path / PORTABLE).unlink()
    with pytest.raises(ArtifactError, match="model.onnx: listed in manifest.json but missing"):
        load_artifact(tmp_path)


def test_save_onnx_goes_external_over_threshold(tmp_path, monkeypatch):
    # Lower the 2 GB threshold instead of writing 2 GB in a unit test.
    monkeypatch.setattr("pomexport.export.onnx_files.EXTERNAL_DATA_THRESHOLD", 1000)
    written = save_onnx(_small_model(), tmp_path / PORTABLE)
    assert written == ["model.onnx.data", PORTABLE]
    assert (tmp_path / "model.onnx.data").stat().st_size == 4096
    assert not list(tmp_path.glob(".*"))  # no temp leftovers
    loaded = onnx.load(str(tmp_path / PORTABLE))
    assert numpy_helper.to_array(loaded.graph.initializer[0])[5] == 5.0


def test_staging_leftovers_of_older_builds_removed(tmp_path):
    """Builds before issue 22 staged twice (build -> export_model) and a kill left
    ``..<out>.building-*`` folders and lock files; the next write removes them, and a nested
    ``staged_artifact`` on a staging folder writes into it instead of staging again."""
    from pomexport.export.artifact import staged_artifact

    out = tmp_path / "out"
    (tmp_path / "..out.building-abc.building-def").mkdir()
    (tmp_path / "..out.building-abc.building-def" / "model.onnx").write_bytes(b"x")
    (tmp_path / "..out.building-abc.lock").write_text("")
    (tmp_path / ".out.old-xyz").mkdir()
    with staged_artifact(out) as staging:
        with staged_artifact(staging) as inner:
            assert inner == staging
            assert {p.name for p in tmp_path.iterdir()} == {".out.lock", staging.name}
            _write(inner)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    load_artifact(out)
