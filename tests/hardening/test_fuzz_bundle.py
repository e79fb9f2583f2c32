"""Fuzzing the bundle unpacker: random archives (member names, types, link targets, listings,
raw and gzip-wrapped garbage) are verified-and-extracted or refused with a PomExportError;
nothing is ever written outside the extraction directory."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import hardening_corpus as corpus
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pomexport.errors import PomExportError
from pomexport.export.bundle import BUNDLE_MANIFEST, FORMAT, FORMAT_VERSION
from pomexport.export.bundle_check import verify_bundle

FUZZ = settings(
    max_examples=300,
    deadline=5000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
_PIECES = ["a", "b", "/", ".", "..", "\\", "C:", "~", "outside", "README.md", " "]
NAMES = st.lists(st.sampled_from(_PIECES), min_size=1, max_size=8).map("".join)
TYPES = st.sampled_from(
    [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE]
    + [tarfile.FIFOTYPE, b"V", b"7"]
)
MEMBERS = st.lists(
    st.tuples(NAMES, TYPES, NAMES, st.binary(max_size=32), st.integers(0, 0o7777)), max_size=6
)


def _tar(members, listing_mode: int) -> bytes:
    buffer = io.BytesIO()
    regular = {n: d for n, kind, _, d, _ in members if kind == tarfile.REGTYPE}
    files = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in regular.items()
    }
    listing = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, link, data, mode in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, mode
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        if listing_mode:
            raw = json.dumps(listing if listing_mode == 1 else files).encode()
            info = tarfile.TarInfo(BUNDLE_MANIFEST)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


def _run(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = corpus.world(Path(tmp))
        before = corpus.snapshot(tmp / "outside")
        (tmp / "bundle.tar.gz").write_bytes(raw)
        try:
            verify_bundle(tmp / "bundle.tar.gz", extract=tmp / "dest")
        except PomExportError:
            pass
        else:  # accepted: only regular files, inside dest
            for path in (tmp / "dest").rglob("*"):
                assert not path.is_symlink() and (path.is_file() or path.is_dir())
        assert corpus.snapshot(tmp / "outside") == before
        assert {p.name for p in tmp.iterdir()} <= {"outside", "bundle.tar.gz", "dest"}


@FUZZ
@given(members=MEMBERS, listing_mode=st.integers(0, 2))
def test_fuzz_bundle_members(members, listing_mode):
    try:
        raw = _tar(members, listing_mode)
    except (ValueError, tarfile.TarError, UnicodeError):
        assume(False)  # tarfile itself cannot write this member
    _run(raw)


@FUZZ
@given(raw=st.binary(max_size=600), wrap=st.booleans())
def test_fuzz_bundle_bytes(raw, wrap):
    _run(gzip.compress(raw) if wrap else raw)
