"""One writer per artifact directory, and a directory that is always whole: the lock, the
staging directory beside ``out``, the swap into place, and the cleanup of what writers that
died left behind."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pomexport.errors import ArtifactError, PomExportError
from pomexport.export.artifact.layout import MANIFEST

log = logging.getLogger(__name__)

# Staging folders this process is writing into (see staged_artifact's re-entry).
_HELD: set[Path] = set()


def is_held(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a staging folder this process is writing (it is locked already)."""
    return Path(path).resolve() in _HELD


@contextmanager
def artifact_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on ``<parent>/.<name>.lock`` while writing ``out``.

    Two builds into one directory then run one after the other (the second waits) instead
    of interleaving their renames. The kernel drops the lock when its holder dies (SIGKILL
    included). The holder deletes the lock file when done; a waiter that locked a file
    deleted meanwhile retries on the new one, so two holders never coexist. No-op where
    fcntl is missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks
        yield lock
        return
    handle = _locked(lock, fcntl)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # before unlocking: a waiter then sees a stale inode
        handle.close()


@contextmanager
def lock_unless_held(root: str | os.PathLike) -> Iterator[None]:
    """The artifact's lock, unless ``root`` is a staging folder this process holds (its
    writer locked it already: locking again would wait on itself)."""
    if is_held(root):
        yield
        return
    with artifact_lock(root):
        yield


@contextmanager
def staged_artifact(
    out: str | os.PathLike, error: type[PomExportError] = ArtifactError
) -> Iterator[Path]:
    """Write an artifact into an empty staging directory beside ``out``; rename it into
    place when the ``with`` body succeeds, so ``out`` is always the old artifact or the
    new one, never half of either.

    ``out`` may be absent, empty or an earlier artifact; anything else raises ``error``.
    Holds :func:`artifact_lock` throughout and first removes staging directories left by
    writers that died (SIGKILL, power loss), which the lock proves are nobody's.
    """
    out = Path(out)
    if is_held(out):
        # ``out`` is a staging folder this process is writing: it is locked and swapped in
        # by the outer writer already. Staging it again would put a second staging folder
        # and lock file beside it, which nothing removes after a kill.
        yield out
        return
    _writable_parent(out, error)
    with artifact_lock(out):
        if out.exists() and not out.is_dir():
            raise error(f"{out}: exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
            raise error(f"{out}: not empty and not a pomexport artifact; choose another --out")
        _remove_stale(out)
        staging = _staging_dir(out)
        _HELD.add(staging.resolve())
        try:
            yield staging
            _swap_in(staging, out)
        finally:
            _HELD.discard(staging.resolve())
            shutil.rmtree(staging, ignore_errors=True)


def _writable_parent(out: Path, error: type[PomExportError]) -> None:
    """Create ``out``'s parent and prove a file can be made there, before any export work:
    one line instead of a PermissionError traceback minutes later."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe-", dir=out.parent)
    except OSError as e:
        raise error(f"cannot write {out}: {e.strerror or e}") from e
    os.close(fd)
    os.unlink(probe)


def _remove_stale(out: Path) -> None:
    """Remove what writers of ``out`` that died left beside it (the caller holds the lock, so
    none of it is anybody's): staging and old folders, and the nested staging folders and
    lock files that builds before issue 22 made (``..<out>.building-*``)."""
    patterns = (f".{out.name}.building-*", f".{out.name}.old-*", f"..{out.name}.building-*")
    for pattern in patterns:
        for stale in out.parent.glob(pattern):
            log.info("removing %s (left by an interrupted write)", stale)
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _staging_dir(out: Path) -> Path:
    """An empty directory beside ``out`` with the mode a plain mkdir gives (mkdtemp: 0700)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _swap_in(built: Path, out: Path) -> None:
    """Rename the finished ``built`` directory to ``out``, replacing an old artifact."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(built, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _locked(lock: Path, fcntl):
    """An open handle holding the flock of the file currently at ``lock``."""
    while True:
        handle = open(lock, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another build holds %s; waiting", lock)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # locked a file its holder deleted: lock the new one
