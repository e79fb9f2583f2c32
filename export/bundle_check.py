"""``pomexport verify-bundle``: check a deploy bundle (export/bundle.py) and unpack it safely.

Everything is checked before any byte is written, each failure one line naming the member:
- names: relative, normalised (no ``.``/empty parts), no ``..``, no backslash, no drive;
- types: regular files only (directories only as parents of listed files); symlinks, hard
  links, device nodes, FIFOs are refused whatever they point at;
- listing: ``bundle.json`` parses and is a pomexport-bundle; every member is listed, every
  listed file is present exactly once, with its size and sha256; the decoder graphs its
  ``decoder`` names (when it names any) are listed members.

Extraction then goes into a hidden staging folder inside the target directory through
``tarfile``'s ``filter="data"`` (where the Python has it), the files are hashed again, and
the staging folder's entries are renamed into place. Why both our checks and the filter: the
filter alone accepts symlinks and hard links that stay inside the target, knows nothing of
bundle.json (unlisted or tampered files), and its errors stop mid-extraction with part of
the archive written; our checks alone would be the only barrier if they missed a case that
tarfile handles (pax path overrides, platform path quirks, special mode bits). Each covers
what the other cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pomexport.errors import ArtifactError
from pomexport.export.artifact.limits import DEFAULT_LIMITS, Limits, SizeBudget, check_json_depth
from pomexport.export.artifact.paths import sha256_file
from pomexport.export.artifact.signing import (
    BUNDLE_SIGNATURE,
    MAX_SIGNATURE_BYTES,
    TrustedKey,
    check_signature,
    trusted_keys,
)
from pomexport.export.bundle import BUNDLE_MANIFEST, FORMAT, FORMAT_VERSION

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class BundleReport:
    """A verified bundle: its listing, and where it was extracted (None: not extracted)."""

    path: Path
    listing: dict
    extracted: Path | None = None

    @property
    def files(self) -> dict[str, dict]:
        return self.listing["files"]

    @property
    def summary(self) -> str:
        target = self.listing.get("target", {})
        model = self.listing.get("model", {})
        size = sum(int(e["bytes"]) for e in self.files.values())
        where = f"; extracted to {self.extracted}" if self.extracted else ""
        return (
            f"OK {self.path}: {len(self.files) + 1} files verified ({size / 2**20:.1f} MiB), "
            f"{model.get('name')} {model.get('precision')} for {target.get('name')} "
            f"(TensorRT {target.get('tensorrt')}, CUDA {target.get('cuda')}){where}"
        )


def unsafe_name(name: str) -> str | None:
    """Why ``name`` may not be a bundle path (None: it is a plain relative path)."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "backslash or drive letter"
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("/"):
        return "absolute path"
    if ".." in pure.parts:
        return "'..' component"
    if pure.as_posix() != name.rstrip("/") or "." in name.split("/"):
        return "not a normalised path"
    return None


def _kind(member: tarfile.TarInfo) -> str | None:
    """Why ``member``'s type is refused (None: a regular file or a directory)."""
    if member.issym():
        return f"a symlink (to {member.linkname!r})"
    if member.islnk():
        return f"a hard link (to {member.linkname!r})"
    if member.ischr() or member.isblk():
        return "a device node"
    if member.isfifo():
        return "a FIFO"
    if not (member.isreg() or member.isdir()):
        return f"not a regular file (tar type {member.type!r})"
    return None


def _check_members(path: Path, members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """Names and types of every member; the regular files by name (duplicates refused)."""
    files: dict[str, tarfile.TarInfo] = {}
    for member in members:
        why = unsafe_name(member.name) or _kind(member)
        if why is not None:
            raise ArtifactError(f"{path.name}: member {member.name!r} refused: {why}")
        if member.isreg():
            if member.name in files:
                raise ArtifactError(f"{path.name}: member {member.name!r} appears twice")
            files[member.name] = member
    return files


def _members(tar: tarfile.TarFile, path: Path, limits: Limits) -> list[tarfile.TarInfo]:
    """The archive's members, refused at the first one past the count or size limits.

    ``getmembers()`` would read every header first (300,000 empty members: 13 s, 370 MB);
    here each header is checked as it is read, from its declared size, before the stream
    is advanced past its data.
    """
    budget = SizeBudget(path.name, limits)
    members = []
    while (member := tar.next()) is not None:
        budget.add(member.name, member.size)
        members.append(member)
    return members


def _read_listing(
    tar: tarfile.TarFile, path: Path, files: dict, limits: Limits, keys: tuple
) -> dict:
    member = files.get(BUNDLE_MANIFEST)
    if member is None:
        raise ArtifactError(f"{path.name}: no {BUNDLE_MANIFEST} (not a pomexport bundle)")
    if member.size > limits.manifest_bytes:
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} is {member.size} bytes (too large)")
    raw = tar.extractfile(member).read()
    signature = files.get(BUNDLE_SIGNATURE)
    if signature is not None and signature.size > MAX_SIGNATURE_BYTES:
        raise ArtifactError(f"{path.name}: {BUNDLE_SIGNATURE} is {signature.size} bytes")
    sig = tar.extractfile(signature).read() if signature is not None else None
    # Before any other member's content is read (hashes, extraction).
    check_signature(f"{path.name}: {BUNDLE_MANIFEST}", raw, sig, keys)
    try:
        listing = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} is not valid JSON ({e})") from e
    check_json_depth(f"{path.name}: {BUNDLE_MANIFEST}", listing, limits)
    if not isinstance(listing, dict) or listing.get("format") != FORMAT:
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} is not a {FORMAT} listing")
    if listing.get("format_version") != FORMAT_VERSION:
        version = listing.get("format_version")
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} format_version {version} unsupported")
    table = listing.get("files")
    if not isinstance(table, dict):
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} has no 'files' table")
    for name, entry in table.items():
        own = name in (BUNDLE_MANIFEST, BUNDLE_SIGNATURE)
        why = "lists itself" if own else unsafe_name(name)
        ok = isinstance(entry, dict) and isinstance(entry.get("bytes"), int)
        if why is None and not (ok and _HEX64.match(str(entry.get("sha256")))):
            why = "entry needs 'sha256' (64 hex) and 'bytes' (int)"
        if why is not None:
            raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} entry {name!r} refused: {why}")
    return listing


def _check_listed(path: Path, members: list, files: dict, table: dict) -> None:
    """Every member listed, every listed file present with its size; dirs only as parents."""
    parents = {p.as_posix() for name in table for p in PurePosixPath(name).parents}
    for member in members:
        if member.isdir() and member.name.rstrip("/") not in parents:
            raise ArtifactError(
                f"{path.name}: member {member.name!r} is a directory no listed file is in"
            )
    for name in files:
        if name not in (BUNDLE_MANIFEST, BUNDLE_SIGNATURE) and name not in table:
            raise ArtifactError(f"{path.name}: member {name!r} is not listed in {BUNDLE_MANIFEST}")
    for name, entry in table.items():
        if name not in files:
            raise ArtifactError(
                f"{path.name}: {name!r} is listed in {BUNDLE_MANIFEST} but missing from the archive"
            )
        if files[name].size != entry["bytes"]:
            raise ArtifactError(
                f"{path.name}: member {name!r} has {files[name].size} bytes, "
                f"{BUNDLE_MANIFEST} says {entry['bytes']}"
            )


def _check_decoder(path: Path, listing: dict) -> None:
    """The decoder stage bundle.json names (docs/design.md §6.2), when it names one: every
    graph of it a listed member, so a bundle cannot drop what its device decodes with."""
    entry = listing.get("decoder")
    if entry is None:
        return
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtifactError(f"{path.name}: {BUNDLE_MANIFEST} 'decoder' must name its files")
    for role, name in sorted(files.items()):
        if name not in listing["files"]:
            raise ArtifactError(
                f"{path.name}: decoder graph {role!r} ({name!r}) is not listed in {BUNDLE_MANIFEST}"
            )


def _mismatch(path: Path, name: str, expected: str, actual: str) -> ArtifactError:
    return ArtifactError(
        f"{path.name}: member {name!r} sha256 mismatch ({BUNDLE_MANIFEST} {expected[:12]}..., "
        f"archive {actual[:12]}...); the bundle was modified or is corrupt"
    )


def _check_hashes(tar: tarfile.TarFile, path: Path, files: dict, table: dict) -> None:
    # In archive order: a gzip stream only seeks forward cheaply.
    for name, member in files.items():
        if name in (BUNDLE_MANIFEST, BUNDLE_SIGNATURE):
            continue
        entry = table[name]
        digest = hashlib.sha256()
        stream = tar.extractfile(member)
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
        if digest.hexdigest() != entry["sha256"]:
            raise _mismatch(path, name, entry["sha256"], digest.hexdigest())


def _prepare_dest(dest: Path, size: int) -> None:
    if dest.is_symlink():
        raise ArtifactError(f"{dest}: is a symlink; extract into a plain directory")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArtifactError(f"{dest}: exists and is not an empty directory; choose another")
    dest.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest).free
    if size > free:  # refuse now rather than fill the disk and fail half-way
        raise ArtifactError(f"{dest}: the bundle needs {size} bytes, {free} are free")


def _extract_plain(tar: tarfile.TarFile, members: list, staging: Path) -> None:
    """Extraction for Pythons without tarfile filters: regular files, O_EXCL|O_NOFOLLOW."""
    for member in members:
        target = staging / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o755 if member.mode & 0o100 else 0o644
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, mode), "wb") as out:
            shutil.copyfileobj(tar.extractfile(member), out)


def _extract(tar: tarfile.TarFile, path: Path, files: dict, table: dict, dest: Path) -> None:
    """Into a staging folder inside ``dest`` (nothing outside it), re-hash, rename into place."""
    try:
        _prepare_dest(dest, sum(int(e["bytes"]) for e in table.values()))
        _extract_into(tar, path, files, table, dest)
    except OSError as e:
        raise ArtifactError(f"{dest}: extraction failed ({e})") from e


def _extract_into(tar: tarfile.TarFile, path: Path, files: dict, table: dict, dest: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".pomexport-extract-", dir=dest))
    try:
        regular = [files[name] for name in sorted(files)]
        if hasattr(tarfile, "data_filter"):
            try:
                tar.extractall(staging, members=regular, filter="data")
            except tarfile.FilterError as e:  # a case our checks missed: still one line
                raise ArtifactError(f"{path.name}: member {e.tarinfo.name!r} refused: {e}") from e
        else:
            _extract_plain(tar, regular, staging)
        for name, entry in table.items():
            actual = sha256_file(staging / name)
            if actual != entry["sha256"]:
                raise _mismatch(path, name, entry["sha256"], actual)
        for top in sorted({name.split("/")[0] for name in files}):
            os.replace(staging / top, dest / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def verify_bundle(
    path: str | os.PathLike,
    extract: str | os.PathLike | None = None,
    limits: Limits = DEFAULT_LIMITS,
    trusted: Sequence[TrustedKey] | None = None,
) -> BundleReport:
    """Verify the bundle at ``path``; with ``extract``, unpack it into that directory.

    ``extract`` must be absent or empty. Raises ArtifactError (one line naming the
    offending member) before anything is written when the archive is not a readable
    tar.gz, a member is unsafe (absolute, ``..``, link, device, FIFO), unlisted, missing,
    or has the wrong size or sha256, or when the archive passes ``limits`` (member count,
    per-member and total declared sizes, bundle.json size and nesting), checked as each
    header is read. With trusted keys (``trusted``, else ``--trusted-key``, else
    ``POMEXPORT_TRUSTED_KEYS``) bundle.json must carry a valid ``bundle.sig`` by one of
    them, checked before any other member is read.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such bundle file")
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = _members(tar, path, limits)
            files = _check_members(path, members)
            listing = _read_listing(tar, path, files, limits, trusted_keys(trusted))
            _check_listed(path, members, files, listing["files"])
            _check_decoder(path, listing)
            _check_hashes(tar, path, files, listing["files"])
            if extract is not None:
                _extract(tar, path, files, listing["files"], Path(extract))
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ArtifactError(f"{path.name}: not a readable tar.gz bundle ({e})") from e
    return BundleReport(path, listing, Path(extract) if extract is not None else None)
