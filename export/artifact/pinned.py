"""The bytes that were verified are the bytes that run (issue 22: time-of-check/time-of-use).

:func:`~pomexport.export.artifact.load_artifact` hashes every file, but a runtime that then
opens ``model.onnx`` (or dlopens a plugin library) by path runs whatever is at that path by
then. Here a consumer gets the bytes that were hashed as they were read: in memory (an ONNX
graph without external data), in a private copy written from the hashed stream (a graph with
external data: ONNX Runtime resolves it next to the model file), or in a sealed memfd (a
library to dlopen: nobody can write it, not even this process).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pomexport.errors import ArtifactError

_CHUNK = 1 << 20


def copy_verified(source: Path, target: Path, sha256: str, what: str) -> None:
    """Copy ``source`` to ``target`` hashing the stream that is written; ArtifactError (and
    ``target`` removed) when that hash is not ``sha256``."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != sha256:
        target.unlink(missing_ok=True)
        raise ArtifactError(
            f"{what}: sha256 does not match the manifest (the file changed after the artifact "
            "was loaded); refusing to use it"
        )


@contextmanager
def private_copy(files: dict[str, tuple[Path, str]], what: str) -> Iterator[Path]:
    """A 0700 temporary folder holding ``files`` (name -> (source, sha256)) copied through
    :func:`copy_verified`; removed on exit. Only this user can change it, and the copy is of
    the hashed stream, so a swap of the sources after the check cannot reach the consumer."""
    folder = Path(tempfile.mkdtemp(prefix="pomexport-verified-"))
    try:
        for name, (source, sha256) in files.items():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            copy_verified(source, target, sha256, f"{what}: {name}")
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def sealed_file(data: bytes, name: str) -> Iterator[str]:
    """A path whose content is ``data`` and cannot change while the ``with`` body runs: a
    memfd sealed against writes (Linux), else a file in a private temporary folder."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is None:
        with tempfile.TemporaryDirectory(prefix="pomexport-sealed-") as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            path.chmod(0o500)
            yield str(path)
        return
    import fcntl

    fd = memfd(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        seals = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
