"""export/artifact/edit.py: one draft, one manifest write, each file hashed once."""

from __future__ import annotations

import json
import shutil

import pytest

from pomexport.errors import ArtifactError, StateError
from pomexport.export.artifact import (
    MANIFEST,
    ArtifactDraft,
    build_manifest,
    edit_artifact,
    load_artifact,
    new_artifact,
    paths,
)
from pomexport.models.config import PoMDiTConfig


def _manifest() -> dict:
    return build_manifest(PoMDiTConfig(), "tiny", "fp32", [], 18, (1, 1, 4))  # no graph


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The names of the files hashed (every binding of the one file hasher)."""
    import sys

    seen: list[str] = []
    original = paths.sha256_file

    def counting(path):
        seen.append(path.name)
        return original(path)

    for module in list(sys.modules.values()):
        if getattr(module, "sha256_file", None) is original:
            monkeypatch.setattr(module, "sha256_file", counting)
    return seen


def test_a_new_artifact_is_committed_once_and_swapped_in(tmp_path, hashed):
    out = tmp_path / "out"
    with new_artifact(out) as draft:
        draft.write("a.bin", lambda tmp: tmp.write_bytes(b"a" * 10))
        draft.manifest = _manifest()
        assert draft.entry("a.bin")["bytes"] == 10  # hashed now ...
        draft.copy_in("sub/b.bin", draft / "a.bin")
        draft.manifest["note"] = "kept"
        assert not (draft / MANIFEST).exists()  # nothing written before the commit
    manifest = json.loads((out / MANIFEST).read_text())
    assert set(manifest["files"]) == {"a.bin", "sub/b.bin"} and manifest["note"] == "kept"
    assert sorted(hashed) == ["a.bin", "b.bin"]  # ... and not again by the commit
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging folder, no lock


def test_a_failed_draft_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), new_artifact(tmp_path / "out") as draft:
        draft.write("a.bin", lambda tmp: tmp.write_bytes(b"a"))
        raise RuntimeError("stage failed")
    assert list(tmp_path.iterdir()) == []


def test_a_rewritten_file_is_hashed_again(tmp_path, hashed):
    draft = ArtifactDraft(tmp_path)
    draft.manifest = _manifest()
    draft.write("a.bin", lambda tmp: tmp.write_bytes(b"first"))
    before = draft.entry("a.bin")["sha256"]
    draft.write("a.bin", lambda tmp: tmp.write_bytes(b"other"))  # same size, new inode
    draft.commit()
    assert load_artifact(tmp_path).files["a.bin"]["sha256"] != before
    assert hashed.count("a.bin") == 3  # two versions, then load_artifact's verification


def test_a_committed_draft_is_read_only(tmp_path):
    draft = ArtifactDraft(tmp_path, _manifest())
    with pytest.raises(StateError, match="has no manifest"):
        ArtifactDraft(tmp_path / "empty").commit()
    draft.commit()
    with pytest.raises(StateError, match="was committed"):
        draft.write("late.bin", lambda tmp: tmp.write_bytes(b"x"))
    with pytest.raises(StateError, match="was committed"):
        draft.commit()


def test_editing_in_place_reuses_the_verified_hashes(tmp_path, hashed):
    root = tmp_path / "art"
    with new_artifact(root) as draft:
        draft.write("a.bin", lambda tmp: tmp.write_bytes(b"a" * 100))
        draft.manifest = _manifest()
    artifact = load_artifact(root)
    hashed.clear()
    with edit_artifact(artifact) as draft:
        draft.write("plugins/x.so", lambda tmp: tmp.write_bytes(b"\x7fELF"))
        assert not (root / MANIFEST).exists()  # no manifest names a file being changed
    assert hashed == ["x.so"]  # a.bin kept its verified hash
    assert set(load_artifact(root).files) == {"a.bin", "plugins/x.so"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # the lock is gone


def test_editing_a_tampered_artifact_is_refused(tmp_path):
    root = tmp_path / "art"
    with new_artifact(root) as draft:
        draft.write("a.bin", lambda tmp: tmp.write_bytes(b"a"))
        draft.manifest = _manifest()
    (root / "a.bin").write_bytes(b"b")
    before = (root / MANIFEST).read_bytes()
    with pytest.raises(ArtifactError, match="sha256 mismatch"), edit_artifact(root):
        pass
    assert (root / MANIFEST).read_bytes() == before
    shutil.rmtree(root)
