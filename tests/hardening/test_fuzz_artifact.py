"""Fuzzing the manifest parser and the artifact loader: whatever the bytes, ``load_artifact``
returns a verified artifact or raises a PomExportError — never anything else. Bounded:
a few hundred examples, a few seconds each test."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import hardening_corpus as corpus
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pomexport.errors import PomExportError
from pomexport.export.artifact import MANIFEST, PORTABLE, load_artifact

FUZZ = settings(
    max_examples=300,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
# Path-ish text: the characters path handling trips over.
_PIECES = [*"ab./\\\x00:~ -", "..", "model.onnx.data"]
PATHS = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)


@pytest.fixture(scope="module")
def base():
    with tempfile.TemporaryDirectory() as tmp:
        yield corpus.write_artifact(Path(tmp) / "art")


def _copy(base: Path, tmp: str) -> Path:
    return Path(shutil.copytree(base, Path(tmp) / "art", symlinks=True))


def _load_or_refuse(root: Path):
    try:
        return load_artifact(root)
    except PomExportError:
        return None


@FUZZ
@given(raw=st.binary(max_size=400))
def test_fuzz_manifest_bytes(base, raw):
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy(base, tmp)
        (root / MANIFEST).write_bytes(raw)
        assert _load_or_refuse(root) is None


def _paths_into(manifest: dict) -> list[tuple[str, ...]]:
    """Keys to replace: top level, and one level into files / io / flavors / model."""
    paths = [(key,) for key in manifest]
    for key in ("files", "io", "flavors", "model"):
        if isinstance(manifest.get(key), dict):
            paths += [(key, sub) for sub in manifest[key]]
    return paths


@FUZZ
@given(data=st.data())
def test_fuzz_manifest_fields(base, data):
    manifest = json.loads((base / MANIFEST).read_text())
    where = data.draw(st.sampled_from(_paths_into(manifest)))
    value = data.draw(JSON)
    target = manifest
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    if data.draw(st.booleans()):
        manifest["files"] = data.draw(st.dictionaries(PATHS, JSON, max_size=3))
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy(base, tmp)
        (root / MANIFEST).write_text(json.dumps(manifest))
        artifact = _load_or_refuse(root)
        if artifact is not None:  # what backends read first: typed, or a PomExportError
            _read_properties(artifact)


def _read_properties(artifact) -> None:
    try:
        read = (artifact.config, artifact.batch, artifact.precision, artifact.variant)
        assert read and artifact.onnx_path("portable") and artifact.flavors
    except PomExportError:
        pass


@FUZZ
@given(data=st.data())
def test_fuzz_onnx_bytes(base, data):
    raw = bytearray((base / PORTABLE).read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy(base, tmp)
        (root / PORTABLE).write_bytes(bytes(raw[:cut]))
        corpus.rehash(root)
        _load_or_refuse(root)


@FUZZ
@given(
    location=PATHS,
    offset=st.integers(-(2**64), 2**64).map(str) | st.text(max_size=6),
    length=st.integers(-(2**64), 2**64).map(str) | st.text(max_size=6),
)
def test_fuzz_external_data(base, location, offset, length):
    """Accepted external data is inside the directory and in bounds: onnx can read it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy(base, tmp)
        corpus.edit_external(root, location=location, offset=offset, length=length)
        if _load_or_refuse(root) is not None:
            loaded = onnx.load(str(root / PORTABLE))  # reads the external bytes
            assert len(loaded.graph.initializer[0].raw_data) <= 4 * corpus.WEIGHTS
