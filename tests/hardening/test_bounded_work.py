"""Bounded work before a refusal (issue 22): a hostile artifact or bundle is refused from its
metadata (sizes, counts) in well under a second, not after hashing or listing everything."""

from __future__ import annotations

import io
import tarfile
import time

import hardening_corpus as corpus
import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import load_artifact
from pomexport.export.artifact.limits import Limits, json_depth
from pomexport.export.bundle_check import verify_bundle


def test_sparse_huge_file_refused_before_hashing(tmp_path):
    """4 GiB with a wrong size: hashing it would take seconds; the size check takes none."""
    tmp = corpus.world(tmp_path)
    case = corpus.sparse_huge_file(tmp)
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match=case.match):
        case.load()
    assert time.perf_counter() - start < 1.0


def test_member_count_bomb_stops_at_the_limit(tmp_path):
    """5,000 empty members with a limit of 100: refused after ~100 headers, not 5,000."""
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(5_000):
            tar.addfile(tarfile.TarInfo(f"e{i}"), io.BytesIO(b""))
    start = time.perf_counter()
    with pytest.raises(ArtifactError, match=r"more than 100 members"):
        verify_bundle(path, limits=Limits(members=100))
    assert time.perf_counter() - start < 0.5


def test_total_size_limit_counts_declared_sizes(tmp_path):
    """Three 1 KiB members under a 2 KiB total: refused at the third header."""
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(3):
            info = tarfile.TarInfo(f"m{i}")
            info.size = 1024
            tar.addfile(info, io.BytesIO(bytes(1024)))
    with pytest.raises(ArtifactError, match=r"add up to more than 2048 bytes"):
        verify_bundle(path, extract=tmp_path / "dest", limits=Limits(total_bytes=2048))
    assert not (tmp_path / "dest").exists()


def test_artifact_limits_apply(tmp_path):
    """The default artifact loads; a limit below its weights file refuses it by name."""
    root = corpus.write_artifact(tmp_path / "art")
    load_artifact(root)
    with pytest.raises(ArtifactError, match=r"'model\.onnx' is \d+ bytes \(limit 4000 per file"):
        load_artifact(root, limits=Limits(member_bytes=4000))


def test_json_depth():
    assert json_depth(1) == 1
    assert json_depth({"a": [1, {"b": []}]}) == 4
    nested: object = 0
    for _ in range(5000):  # deeper than Python's recursion limit: the walk is iterative
        nested = [nested]
    assert json_depth(nested) == 5001
