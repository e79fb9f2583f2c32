"""Reading an artifact: :func:`load_artifact` checks a directory (manifest, paths, listing,
sizes, hashes, graphs against the manifest) before anything in it is used, and returns the
:class:`Artifact` every component reads. Loading never writes to the directory."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.decoder import DecoderSpec
from pomexport.export.artifact.device import DEVICE, DEVICE_SIGNATURE, with_device_files
from pomexport.export.artifact.graph_io import verify_onnx
from pomexport.export.artifact.layout import ENGINES, MANIFEST, PLUGINS
from pomexport.export.artifact.limits import DEFAULT_LIMITS, Limits, SizeBudget
from pomexport.export.artifact.manifest import read_manifest_bytes
from pomexport.export.artifact.paths import (
    external_data_refs,
    read_onnx_bytes,
    safe_member,
    sha256_file,
)
from pomexport.export.artifact.pinned import private_copy
from pomexport.export.artifact.signing import MANIFEST_SIGNATURE, TrustedKey, trusted_keys
from pomexport.models.config import PoMDiTConfig


@dataclass(frozen=True)
class Artifact:
    """A verified artifact directory: its manifest and the paths it names."""

    root: Path
    manifest: dict

    @property
    def config(self) -> PoMDiTConfig:
        return PoMDiTConfig.from_dict(self.manifest["model"]["config"])

    @property
    def model_name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def variant(self) -> str:
        return self.manifest["variant"]

    @property
    def opset(self) -> int:
        return int(self.manifest["opset"])

    @property
    def batch(self) -> tuple[int, int, int]:
        b = self.manifest["batch"]
        return int(b["min"]), int(b["opt"]), int(b["max"])

    @property
    def flavors(self) -> tuple[str, ...]:
        return tuple(self.manifest["flavors"])

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["io"]["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.manifest["io"]["outputs"]

    @property
    def gates(self) -> dict:
        """Accuracy gates per precision declared at build time ({} when none)."""
        return self.manifest.get("gates") or {}

    @property
    def files(self) -> dict[str, dict]:
        return self.manifest["files"]

    @property
    def decoder(self) -> DecoderSpec | None:
        """The latent decoder stage (``export/artifact/decoder.py``); None: the artifact has
        none and writes the model's latents."""
        return DecoderSpec.from_manifest(self.manifest)

    def path(self, name: str) -> Path:
        """Path of a file the manifest lists (verified when the artifact was loaded)."""
        if name not in self.files:
            raise ArtifactError(f"{name}: not listed in {self.root / MANIFEST}")
        return safe_member(self.root, name, MANIFEST)

    def read_verified(self, name: str) -> bytes:
        """The bytes of a listed file, hashed again as read: what the caller uses is what was
        hashed. For files that are code or deserialised (engine plans), where a file swapped
        after :func:`load_artifact` must be refused, not run."""
        data = self.path(name).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.files[name]["sha256"]:
            raise ArtifactError(
                f"{name}: sha256 does not match {MANIFEST} (the file changed after the "
                "artifact was loaded); refusing to use it"
            )
        return data

    @contextmanager
    def verified_onnx(self, name: str) -> Iterator[bytes | str]:
        """What ONNX Runtime should open for the listed ONNX file ``name``: its bytes, hashed
        as read, or, when it has external data, the path of a private copy of it and its data
        written from the hashed streams (``export/artifact/pinned.py``). A file swapped after
        :func:`load_artifact` is refused, never run."""
        data = self.read_verified(name)
        refs = external_data_refs(read_onnx_bytes(name, data))
        if not refs:
            yield data
            return
        base = Path(name).parent
        members = {(base / ref.location).as_posix() for ref in refs}
        copies = {m: (self.path(m), self.files[m]["sha256"]) for m in sorted(members)}
        with private_copy(copies, str(self.root)) as folder:
            (folder / name).write_bytes(data)
            yield str(folder / name)

    def onnx_path(self, flavor: str = "portable") -> Path:
        """``model.onnx`` (portable) or ``model.plugin.onnx`` (plugin)."""
        if flavor not in self.manifest["flavors"]:
            raise ArtifactError(
                f"{self.root.name} has no {flavor!r} flavor (has: {', '.join(self.flavors)})"
            )
        return self.path(self.manifest["flavors"][flavor])

    @property
    def engines(self) -> list[Path]:
        """TensorRT engine plans listed in the manifest."""
        return [self.path(n) for n in self.files if n.startswith(f"{ENGINES}/")]

    @property
    def plugin_library(self) -> tuple[Path, str] | None:
        """(path, manifest sha256) of the plugin library under ``plugins/`` (None: none).

        The hash was checked at load time; a loader hashes the file again right before
        loading it (it is code), see ``export/engine/builder.py::load_plugin_library``.
        """
        for name in sorted(self.files):
            if name.startswith(f"{PLUGINS}/") and name.endswith(".so"):
                return self.path(name), self.files[name]["sha256"]
        return None


def load_artifact(
    path: str | os.PathLike,
    verify: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    trusted: Sequence[TrustedKey] | None = None,
) -> Artifact:
    """Open an artifact directory, verifying hashes and paths first.

    Raises ArtifactError (one line naming the offending file) for a missing or malformed
    manifest, a path leaving the directory (``..``, absolute, escaping symlink) in the
    manifest or in an ONNX file's external-data locations, a missing file, or a sha256
    mismatch, or a file (or symlink) present but not listed, dot-files excepted.
    ``verify=False`` skips the hashes (paths and the listing are always checked). Sizes,
    counts and symlinks are checked before any hash; ``limits`` bounds the work done before a
    refusal (``export/artifact/limits.py``). With trusted keys (``trusted``, else the CLI's
    ``--trusted-key``, else ``POMEXPORT_TRUSTED_KEYS``), manifest.json must carry a valid
    ``manifest.sig`` by one of them, checked before any other file is read
    (``export/artifact/signing.py``). Files built on the device are listed in device.json
    (``export/artifact/device.py``), signed too when keys are configured. Nothing is written.
    """
    root = Path(path)
    keys = trusted_keys(trusted)
    manifest, raw = read_manifest_bytes(root, limits, keys)
    manifest = with_device_files(root, manifest, raw, keys)  # files built on the device
    files = manifest["files"]
    _check_listing(root, manifest, limits)
    if verify:  # last: every cheaper refusal came first
        for name, entry in files.items():
            _verify_hash(root, name, entry)
    for name in files:
        if name.endswith(".onnx"):
            verify_onnx(root, name, manifest)
    return Artifact(root=root, manifest=manifest)


def _check_listing(root: Path, manifest: dict, limits: Limits) -> None:
    """Counts, declared sizes, every listed file's metadata, the flavors, nothing unlisted."""
    files = manifest["files"]
    budget = SizeBudget(MANIFEST, limits)
    if len(files) > limits.members:
        raise ArtifactError(f"{MANIFEST}: lists {len(files)} files (limit {limits.members})")
    for name, entry in files.items():  # declared sizes: bounded before any file is touched
        budget.add(name, entry["bytes"])
    for name, entry in files.items():
        _check_file(root, name, entry)
    for flavor, name in manifest.get("flavors", {}).items():
        if name not in files:
            raise ArtifactError(f"{name}: the {flavor} flavor is not listed in {MANIFEST}")
    _refuse_unlisted(root, files, limits)


def _refuse_symlinked(root: Path, name: str) -> None:
    """No component of a listed path may be a symlink, even one pointing inside: the writer
    never makes one, and a link's target can change between the check and the use."""
    current = root
    for part in Path(name).parts:
        current = current / part
        if current.is_symlink():
            rel = current.relative_to(root).as_posix()
            raise ArtifactError(f"{name}: {rel} is a symlink (an artifact holds plain files)")


def _check_file(root: Path, name: str, entry: dict) -> None:
    """Path, type, links and size of one listed file: metadata only, nothing read."""
    path = safe_member(root, name, MANIFEST)
    _refuse_symlinked(root, name)
    try:
        info = path.stat() if path.is_file() else None
    except OSError as e:
        raise ArtifactError(f"{name}: cannot read it ({e.strerror})") from e
    if info is None:
        raise ArtifactError(f"{name}: listed in {MANIFEST} but missing from {root}")
    if info.st_nlink > 1:
        # A hard link shares its bytes with a file elsewhere: who else can write them?
        raise ArtifactError(
            f"{name}: has {info.st_nlink} hard links; copy the artifact (cp -r) instead of linking"
        )
    if info.st_size != entry["bytes"]:  # before hashing: a wrong size costs no read
        raise ArtifactError(
            f"{name}: {info.st_size} bytes but {MANIFEST} says {entry['bytes']}; the artifact "
            "was modified or is corrupt"
        )


def _verify_hash(root: Path, name: str, entry: dict) -> None:
    expected = entry.get("sha256")
    actual = sha256_file(root / name)
    if actual != expected:
        raise ArtifactError(
            f"{name}: sha256 mismatch (manifest {str(expected)[:12]}..., file {actual[:12]}...);"
            " the artifact was modified or is corrupt"
        )


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _refuse_unlisted(root: Path, files: dict, limits: Limits) -> None:
    """Every entry but manifest.json and dot-files must be listed (runtime/cpp agrees).

    Dot-files are exempt because they are what an interrupted atomic write leaves behind
    (``.name.XXXX.tmp``); no loader ever opens one. Symlinks are not followed: an unlisted
    one is refused like any unlisted file, a directory symlink as one entry.
    """
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath).relative_to(root).as_posix()
        seen += len(dirnames) + len(filenames)
        if seen > 2 * limits.members + 64:  # dot-files too: a directory of 300,000 is refused
            raise ArtifactError(f"{root}: holds more than {2 * limits.members + 64} entries")
        for entry in sorted(dirnames + filenames):
            rel = entry if base == "." else f"{base}/{entry}"
            if _hidden(rel) or rel in (MANIFEST, MANIFEST_SIGNATURE, DEVICE, DEVICE_SIGNATURE):
                continue
            path = root / rel
            if (path.is_symlink() or not path.is_dir()) and rel not in files:
                raise ArtifactError(f"{rel}: present in {root} but not listed in {MANIFEST}")
        dirnames[:] = [
            d for d in dirnames if not (d.startswith(".") or (Path(dirpath) / d).is_symlink())
        ]
