"""device.json: the files built on the device, recorded beside a manifest that stays as shipped.

The bundle's ``build.sh`` compiles the plugin library and builds the TensorRT engine on the
device; their hashes cannot be in the manifest the packager signed. They are recorded here
instead (docs/design.md §6.1; ``runtime/cpp/src/device_files.cpp`` is the C++ twin)::

    {"format": "pomexport-device-files", "format_version": 1,
     "manifest_sha256": "<sha256 of the manifest.json bytes it extends>",
     "files": {"engines/<gpu>-sm<NN>-trt<ver>.plan": {"sha256": ..., "bytes": ...}, ...},
     "engines": {"engines/...plan": {"key": {"onnx_sha256": ...}}}}     (optional)

A loader accepts it only when it is bound to the manifest it read, lists nothing but
``plugins/*.so``, ``engines/*.plan`` and ``timing.cache``, replaces nothing the manifest lists
and, with trusted keys configured, carries ``device.sig`` by one of them (the device's own key:
these files are native code). Its files are then checked like the manifest's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.layout import MANIFEST
from pomexport.export.artifact.signing import MAX_SIGNATURE_BYTES, TrustedKey, check_signature

DEVICE = "device.json"
DEVICE_SIGNATURE = "device.sig"
DEVICE_FORMAT = "pomexport-device-files"
DEVICE_FORMAT_VERSION = 1
MAX_DEVICE_BYTES = 1 << 20
_NAME = re.compile(r"(engines/[^./\\][^/\\]*\.plan|plugins/[^./\\][^/\\]*\.so|timing\.cache)")


def _read_plain(path: Path, limit: int) -> bytes | None:
    """A plain file's bytes (None: absent); a symlink, another type or more than ``limit``
    bytes is refused."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ArtifactError(f"{path.name}: not a plain file")
    if not path.exists():
        return None
    if path.stat().st_size > limit:
        raise ArtifactError(f"{path.name}: larger than {limit} bytes")
    return path.read_bytes()


def _entry(name: str, entry: object) -> dict:
    ok = isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
    if not ok or not isinstance(entry.get("bytes"), int) or entry["bytes"] < 0:
        raise ArtifactError(f"{DEVICE}: entry {name!r} needs sha256 and bytes")
    return {"sha256": entry["sha256"], "bytes": entry["bytes"]}


def with_device_files(
    root: Path, manifest: dict, manifest_bytes: bytes, keys: Sequence[TrustedKey]
) -> dict:
    """``manifest`` with ``root``/device.json's files (and engine records) added; unchanged
    when there is none. ArtifactError (one line) for an unsigned one when ``keys`` are
    configured, one bound to other manifest bytes, or one listing anything else."""
    raw = _read_plain(root / DEVICE, MAX_DEVICE_BYTES)
    if raw is None:
        return manifest
    signature = _read_plain(root / DEVICE_SIGNATURE, MAX_SIGNATURE_BYTES)
    check_signature(str(root / DEVICE), raw, signature, keys)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{DEVICE}: unreadable ({str(e)[:200]})") from e
    if not isinstance(doc, dict) or (doc.get("format"), doc.get("format_version")) != (
        DEVICE_FORMAT,
        DEVICE_FORMAT_VERSION,
    ):
        raise ArtifactError(f"{DEVICE}: not a {DEVICE_FORMAT} v1 record")
    if doc.get("manifest_sha256") != hashlib.sha256(manifest_bytes).hexdigest():
        raise ArtifactError(
            f"{DEVICE}: records files built for another {MANIFEST}; rebuild on the device "
            "(build.sh) or remove it"
        )
    listed = doc.get("files")
    if not isinstance(listed, dict):
        raise ArtifactError(f"{DEVICE}: has no 'files' table")
    files = dict(manifest["files"])
    for name, entry in listed.items():
        if not _NAME.fullmatch(name):
            raise ArtifactError(
                f"{DEVICE}: may list only plugins/*.so, engines/*.plan and timing.cache, "
                f"not {name!r}"
            )
        if name in files:
            raise ArtifactError(
                f"{DEVICE}: {name!r} is already listed in {MANIFEST}; a device record cannot "
                "replace a shipped file"
            )
        files[name] = _entry(name, entry)
    merged = {**manifest, "files": files}
    records = doc.get("engines")
    if isinstance(records, dict):
        kept = {n: r for n, r in records.items() if n in listed}
        merged["engines"] = {**manifest.get("engines", {}), **kept}
    return merged
