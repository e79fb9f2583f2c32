"""THE way to write an artifact: a draft that stages files and manifest changes, committed
with a single manifest write.

    with new_artifact("build/tiny") as draft:       # staged beside build/tiny, locked
        save_onnx(graph, draft.target(PORTABLE))
        draft.manifest = build_manifest(...)
        ...                                          # more stages, same draft
    # committed (manifest.json written once, each file hashed once), then swapped into place

    with edit_artifact("build/tiny") as draft:       # an existing artifact, in place
        draft.copy_in("plugins/libpomexport_plugins.so", library)

Every stage of a build (export, int8, plugin library, engine) takes the draft, so a build
writes manifest.json once and hashes each file once; called alone, a stage opens its own
draft. The manifest is held without ``files``: :meth:`ArtifactDraft.commit` lists and hashes
the files, reusing a hash while the file's inode, size and mtime are unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pomexport.errors import ArtifactError, PomExportError, StateError
from pomexport.export.artifact import manifest as manifests
from pomexport.export.artifact import paths
from pomexport.export.artifact.atomic import atomic_write
from pomexport.export.artifact.layout import FORMAT, MANIFEST
from pomexport.export.artifact.load import Artifact, load_artifact
from pomexport.export.artifact.signing import MANIFEST_SIGNATURE
from pomexport.export.artifact.staging import lock_unless_held, staged_artifact

_StatKey = tuple[int, int, int]  # inode, size, mtime (ns): a file rewritten gets a new one


def _stat_key(path: Path) -> _StatKey:
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


class ArtifactDraft:
    """An artifact being written: its files in ``root``, its manifest (without ``files``) in
    memory until :meth:`commit`.

    ``root`` is a staging directory (:func:`new_artifact`) or the artifact itself
    (:func:`edit_artifact`, ``in_place``: its manifest.json is removed before the first
    change, so no manifest ever names a file being replaced). ``draft / name`` is the path
    of a member; write through :meth:`target`, :meth:`write` or :meth:`copy_in`.
    """

    def __init__(
        self, root: str | os.PathLike, manifest: dict | None = None, in_place: bool = False
    ) -> None:
        self.root = Path(root)
        self._manifest = _without_files(manifest or {})
        self._hashes: dict[str, tuple[_StatKey, dict]] = {}
        self._in_place = in_place
        self._committed = False

    @classmethod
    def of(cls, artifact: Artifact) -> ArtifactDraft:
        """An in-place draft of a loaded artifact: its verified hashes are reused for every
        file still as it was."""
        draft = cls(artifact.root, artifact.manifest, in_place=True)
        for name, entry in artifact.files.items():
            path = artifact.root / name
            if path.is_file():
                draft._hashes[name] = (_stat_key(path), dict(entry))
        return draft

    # -- the manifest ------------------------------------------------------------------------
    @property
    def manifest(self) -> dict:
        """The manifest to commit, without ``files`` (a dict: stages set keys on it)."""
        return self._manifest

    @manifest.setter
    def manifest(self, value: dict) -> None:
        self._check_open()
        self._manifest = _without_files(value)

    @property
    def committed(self) -> bool:
        return self._committed

    # -- files -------------------------------------------------------------------------------
    def __truediv__(self, name: str) -> Path:
        return self.root / name

    def __fspath__(self) -> str:
        return str(self.root)

    def target(self, name: str) -> Path:
        """The path to write member ``name`` to (its folder made), once writes are allowed."""
        self._begin_change()
        path = paths.safe_member(self.root, name, "artifact draft")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, name: str, write: Callable[[Path], object]) -> Path:
        """Write member ``name`` atomically: ``write(tmp)``, then rename onto it."""
        path = self.target(name)
        atomic_write(path, write)
        return path

    def copy_in(self, name: str, source: str | os.PathLike) -> Path:
        """Copy the file ``source`` to member ``name`` (atomically)."""
        return self.write(name, lambda tmp: shutil.copyfile(source, tmp))

    def remove(self, name: str) -> None:
        """Delete member ``name`` (absent: nothing to do)."""
        self.target(name).unlink(missing_ok=True)

    def entry(self, name: str) -> dict:
        """``{"sha256", "bytes"}`` of member ``name``, hashed once while the file is unchanged."""
        path = self.root / name
        key = _stat_key(path)
        cached = self._hashes.get(name)
        if cached is None or cached[0] != key:
            cached = (key, {"sha256": paths.sha256_file(path), "bytes": key[1]})
            self._hashes[name] = cached
        return cached[1]

    def files(self) -> dict[str, dict]:
        """Every member file's entry, as :meth:`commit` will record them."""
        return {name: self.entry(name) for name in manifests.member_files(self.root)}

    def artifact(self) -> Artifact:
        """The draft as an :class:`Artifact` (unverified: this process wrote the files), for
        a stage that reads what earlier stages wrote (the engine builder)."""
        return Artifact(root=self.root, manifest={**self._manifest, "files": self.files()})

    # -- commit ------------------------------------------------------------------------------
    def commit(self) -> Path:
        """Hash what is not hashed yet and write manifest.json, once. The draft is then
        read-only."""
        self._check_open()
        if self._manifest.get("format") != FORMAT:
            raise StateError(f"{self.root}: nothing to commit (the draft has no manifest)")
        path = manifests.store_manifest(self.root, {**self._manifest, "files": self.files()})
        self._committed = True
        return path

    def _check_open(self) -> None:
        if self._committed:
            raise StateError(f"{self.root}: the draft was committed; open a new one to change it")

    def _begin_change(self) -> None:
        self._check_open()
        if self._in_place:
            (self.root / MANIFEST_SIGNATURE).unlink(missing_ok=True)
            (self.root / MANIFEST).unlink(missing_ok=True)
            self._in_place = False  # once


def _without_files(manifest: dict) -> dict:
    """A copy of ``manifest`` without ``files`` (the draft's hashes replace them)."""
    return {k: v for k, v in manifest.items() if k != "files"}


@contextmanager
def new_artifact(
    out: str | os.PathLike | ArtifactDraft, error: type[PomExportError] = ArtifactError
) -> Iterator[ArtifactDraft]:
    """A draft of a new artifact at ``out``, staged beside it (``staging.staged_artifact``:
    locked, swapped into place whole) and committed when the body succeeds unless it
    committed itself. Given a draft, yields it: its owner commits."""
    if isinstance(out, ArtifactDraft):
        yield out
        return
    with staged_artifact(out, error) as staging:
        draft = ArtifactDraft(staging)
        yield draft
        if not draft.committed:
            draft.commit()


@contextmanager
def edit_artifact(
    artifact: Artifact | str | os.PathLike | ArtifactDraft, verify: bool = True
) -> Iterator[ArtifactDraft]:
    """An in-place draft of an existing artifact (loaded and verified unless an
    :class:`Artifact` is given), under its lock, committed when the body succeeds unless it
    committed itself. Given a draft, yields it: its owner commits."""
    if isinstance(artifact, ArtifactDraft):
        yield artifact
        return
    root = artifact.root if isinstance(artifact, Artifact) else Path(artifact)
    with lock_unless_held(root):
        loaded = artifact if isinstance(artifact, Artifact) else load_artifact(root, verify)
        draft = ArtifactDraft.of(loaded)
        yield draft
        if not draft.committed:
            draft.commit()
