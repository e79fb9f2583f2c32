"""Atomic files: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class TempTarget:
    """A file written in pieces: a hidden temp file beside ``path``, renamed onto it by
    :meth:`commit` (readers never see half a file) or removed by :meth:`discard`."""

    def __init__(self, path: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        # mkstemp creates 0600; give the file the mode a plain open() would (0666 & ~umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        self.path, self.tmp = path, Path(tmp)

    def commit(self) -> None:
        with open(self.tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = TempTarget(path)
    try:
        write(target.tmp)
        target.commit()
    except BaseException:
        target.discard()
        raise
