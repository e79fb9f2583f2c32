"""Verified bytes are the bytes that run (issue 22): a sealed memfd cannot be written, even by
this process, and dlopen loads a library from it; a private copy is of the hashed stream."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact.pinned import copy_verified, sealed_file


def test_sealed_file_refuses_writes(tmp_path):
    with sealed_file(b"hashed bytes", "x") as path:
        with open(path, "rb") as f:
            assert f.read() == b"hashed bytes"
        if path.startswith("/proc/self/fd/"):
            with pytest.raises(PermissionError):
                with open(path, "r+b") as f:  # F_SEAL_WRITE: opening for writing is refused
                    f.write(b"swapped")
        else:
            assert not os.access(path, os.W_OK) or os.geteuid() == 0


def test_library_loads_from_a_sealed_file(tmp_path):
    """What load_plugin_library does with the hashed bytes of a plugin library: dlopen them
    from the sealed copy (a real shared library, compiled here)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    assert gcc, "a C compiler is required (gcc)"
    source = tmp_path / "answer.c"
    source.write_text("int pomexport_answer(void) { return 42; }\n")
    library = tmp_path / "libanswer.so"
    subprocess.run([gcc, "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    data = library.read_bytes()
    with sealed_file(data, library.name) as pinned:
        loaded = ctypes.CDLL(pinned)
    library.write_bytes(b"swapped after the hash")  # too late: the mapping is of the sealed bytes
    assert loaded.pomexport_answer() == 42


def test_copy_verified_refuses_other_bytes(tmp_path):
    source, target = tmp_path / "a", tmp_path / "b"
    source.write_bytes(b"what was hashed")
    copy_verified(source, target, hashlib.sha256(b"what was hashed").hexdigest(), "a")
    assert target.read_bytes() == b"what was hashed"
    source.write_bytes(b"what is there now")
    with pytest.raises(ArtifactError, match=r"a: sha256 does not match"):
        copy_verified(source, tmp_path / "c", hashlib.sha256(b"what was hashed").hexdigest(), "a")
    assert not (tmp_path / "c").exists()
