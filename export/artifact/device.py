"""device.json: the files built on the device, recorded beside a manifest that stays as shipped.

The bundle's ``build.sh`` compiles the plugin library and builds the TensorRT engine on the
device; their hashes cannot be in the manifest the packager signed. They are recorded here
instead (docs/design.md §6.1; ``runtime/cpp/src/device_files.cpp`` is the C++ twin)::

    {"format": "pomexport-device-files", "format_version": 1,
     "manifest_sha256": "<sha256 of the manifest.json bytes it extends>",
     "files": {"engines/<gpu>-sm<NN>-trt<ver>.plan": {"sha256": ..., "bytes": ...}, ...},
     "engines": {"engines/...plan": {"key": {"onnx_sha256": ...}}}}     (optional)

A loader accepts it only when it is bound to the manifest it read, lists nothing but
``plugins/*.so``, ``engines/*.plan``, ``timing.cache`` and the decoder stage's engines
``decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan`` (``<role>`` one of the artifact's decoder roles),
replaces nothing the manifest lists and, with trusted keys configured, carries ``device.sig``
by one of them (the device's own key: these files are native code). Its files are then checked
like the manifest's; the engine records of decoder plans join the decoder entry's
``engines`` (where the decoder engine choosers look), the others the manifest's ``engines``.

:func:`record_device_files` is the Python writer (the engine builder's, on a committed
artifact): it adds files to the record, keeps the ones already recorded, and signs the record
with the device key (:func:`device_signing_key`: ``POMEXPORT_DEVICE_KEY``, as ``build.sh``);
manifest.json is never written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.export.artifact.decoder import KEY as DECODER_KEY
from pomexport.export.artifact.layout import DECODER_DIR, DEVICE, DEVICE_SIGNATURE, MANIFEST
from pomexport.export.artifact.limits import DEFAULT_LIMITS
from pomexport.export.artifact.manifest import read_manifest_bytes
from pomexport.export.artifact.paths import read_plain_file, safe_member, sha256_file
from pomexport.export.artifact.signing import (
    MAX_SIGNATURE_BYTES,
    TrustedKey,
    check_signature,
    key_id,
    load_private_key,
    signature_document,
    trusted_keys,
)
from pomexport.export.artifact.staging import lock_unless_held

logger = logging.getLogger(__name__)

DEVICE_FORMAT = "pomexport-device-files"
DEVICE_FORMAT_VERSION = 1
MAX_DEVICE_BYTES = 1 << 20
DEVICE_KEY_ENV = "POMEXPORT_DEVICE_KEY"  # the device's PEM Ed25519 private key, as build.sh
_NAME = re.compile(r"(engines/[^./\\][^/\\]*\.plan|plugins/[^./\\][^/\\]*\.so|timing\.cache)")
# decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan (export/engine/decoder_engine.py): the role is
# what comes before the first '-'; it must be one of the artifact's decoder roles
_DECODER_PLAN = re.compile(DECODER_DIR + r"/([^./\\-][^/\\-]*)-[^/\\]+\.plan")


def _check_name(manifest: dict, name: str) -> None:
    """ArtifactError (one line) unless device.json may list ``name``: a device-built file
    name (a decoder plan of one of the artifact's decoder roles) the manifest does not list."""
    plan = _DECODER_PLAN.fullmatch(name)
    if not plan and not _NAME.fullmatch(name):
        raise ArtifactError(
            f"{DEVICE}: may list only plugins/*.so, engines/*.plan and timing.cache "
            f"(and decoder/<role>-*.plan), not {name!r}"
        )
    if plan:
        roles = sorted((manifest.get(DECODER_KEY) or {}).get("files", {}))
        if plan.group(1) not in roles:
            which = f"roles: {', '.join(roles)}" if roles else "it has no decoder stage"
            raise ArtifactError(
                f"{DEVICE}: {name!r} is not the engine of a decoder role of this artifact ({which})"
            )


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
    raw = read_plain_file(root / DEVICE, MAX_DEVICE_BYTES, DEVICE)
    if raw is None:
        return manifest
    signature = read_plain_file(root / DEVICE_SIGNATURE, MAX_SIGNATURE_BYTES, DEVICE_SIGNATURE)
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
        _check_name(manifest, name)
        if name in files:
            raise ArtifactError(
                f"{DEVICE}: {name!r} is already listed in {MANIFEST}; a device record cannot "
                "replace a shipped file"
            )
        files[name] = _entry(name, entry)
    return _with_records({**manifest, "files": files}, listed, doc.get("engines"))


def _with_records(merged: dict, listed: dict, records: object) -> dict:
    """``merged`` with device.json's engine ``records`` of the files it ``listed``: a decoder
    plan's in the decoder entry's ``engines`` (replacing a shipped record of that name, which
    described another file), the others in the manifest's ``engines``."""
    plans = {n for n in listed if _DECODER_PLAN.fullmatch(n)}
    records = records if isinstance(records, dict) else None
    if records is not None:
        kept = {n: r for n, r in records.items() if n in listed and n not in plans}
        merged["engines"] = {**merged.get("engines", {}), **kept}
    if plans:  # listed decoder plans: the artifact has a decoder entry
        entry = merged[DECODER_KEY]
        shipped = {n: r for n, r in entry.get("engines", {}).items() if n not in plans}
        built = {n: r for n, r in (records or {}).items() if n in plans}
        merged[DECODER_KEY] = {**entry, "engines": {**shipped, **built}}
    return merged


def device_signing_key(keys: Sequence[TrustedKey], device_key: str | os.PathLike | None = None):
    """The private key that signs device.json: ``device_key``, else ``POMEXPORT_DEVICE_KEY``;
    None when neither is set and no keys are trusted (the record is then unsigned, like an
    unsigned manifest). ConfigError (one line) with trusted keys but no device key, or a device
    key that is not among them: loaders would refuse the record (checked before any build)."""
    path = device_key or os.environ.get(DEVICE_KEY_ENV, "").strip() or None
    if path is None:
        if keys:
            raise ConfigError(
                f"{len(keys)} trusted key(s) are configured but no device key ({DEVICE_KEY_ENV}): "
                f"loaders would refuse the unsigned {DEVICE}; make one (pomexport keygen) and "
                "add its public key to the trusted keys"
            )
        return None
    private = load_private_key(path)
    if keys and key_id(private.public_key()) not in {k.key_id for k in keys}:
        raise ConfigError(
            f"{path}: the device key's public key is not a trusted key; loaders would refuse "
            f"{DEVICE} signed with it"
        )
    return private


def record_device_files(
    root: str | os.PathLike,
    files: Mapping[str, bytes],
    engines: Mapping[str, dict] | None = None,
    *,
    trusted: Sequence[TrustedKey] | None = None,
    device_key: str | os.PathLike | None = None,
) -> Path:
    """Write ``files`` (name -> bytes: ``engines/*.plan``, ``plugins/*.so``,
    ``timing.cache``, decoder plans ``decoder/<role>-*.plan``) into the committed artifact
    ``root`` and record them, with their ``engines`` records, in its device.json, bound to
    manifest.json as it is (never written).

    Files already recorded there stay recorded; the record is signed with the device key
    (:func:`device_signing_key`). A ``timing.cache`` the manifest ships is kept as shipped;
    any other shipped name is refused (a device record adds files, never replaces one).
    ArtifactError/ConfigError (one line) before anything is written."""
    root = Path(root)
    keys = trusted_keys(trusted)
    private = device_signing_key(keys, device_key)
    with lock_unless_held(root):
        manifest, raw = read_manifest_bytes(root, DEFAULT_LIMITS, keys)
        kept, kept_engines = _recorded(root, manifest, raw, keys, verify=private is not None)
        new = _new_files(manifest, files)
        (root / DEVICE_SIGNATURE).unlink(missing_ok=True)
        for name, data in new.items():
            atomic_write(safe_member(root, name, DEVICE), lambda tmp, d=data: tmp.write_bytes(d))
            kept[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        records = {**kept_engines, **{n: r for n, r in (engines or {}).items() if n in new}}
        doc = {
            "format": DEVICE_FORMAT,
            "format_version": DEVICE_FORMAT_VERSION,
            "manifest_sha256": hashlib.sha256(raw).hexdigest(),
            "files": kept,
            **({"engines": records} if records else {}),
        }
        data = (json.dumps(doc, indent=2) + "\n").encode()
        atomic_write(root / DEVICE, lambda tmp: tmp.write_bytes(data))
        if private is not None:
            signature = signature_document(data, private)
            atomic_write(root / DEVICE_SIGNATURE, lambda tmp: tmp.write_bytes(signature))
    logger.info(
        "recorded %s in %s%s",
        ", ".join(new),
        root / DEVICE,
        " (signed)" if private is not None else " (unsigned)",
    )
    return root / DEVICE


def _recorded(
    root: Path, manifest: dict, raw: bytes, keys: Sequence[TrustedKey], verify: bool
) -> tuple[dict, dict]:
    """(files, engine records) of the device.json already there (accepted as a loader
    accepts it); their hashes checked when the new record will be signed over them."""
    merged = with_device_files(root, manifest, raw, keys)
    files = {n: e for n, e in merged["files"].items() if n not in manifest["files"]}
    decoder = (merged.get(DECODER_KEY) or {}).get("engines", {})
    records = {n: r for n, r in {**merged.get("engines", {}), **decoder}.items() if n in files}
    for name, entry in files.items() if verify else ():
        path = safe_member(root, name, DEVICE)
        if not path.is_file() or path.is_symlink() or sha256_file(path) != entry["sha256"]:
            raise ArtifactError(
                f"{name}: recorded in {DEVICE} but missing or changed; rebuild it or remove "
                f"{DEVICE}"
            )
    return files, records


def _new_files(manifest: dict, files: Mapping[str, bytes]) -> dict[str, bytes]:
    """``files`` less a timing cache the manifest ships; a name the record may not hold, or
    another shipped one, refused."""
    new = {}
    for name, data in files.items():
        _check_name(manifest, name)
        if name in manifest["files"]:
            if name == "timing.cache":
                logger.info("timing.cache ships in %s: kept as shipped", MANIFEST)
                continue
            raise ArtifactError(
                f"{name}: shipped in {MANIFEST}; a device build cannot replace it (rebuild the "
                "artifact with pomexport build)"
            )
        new[name] = bytes(data)
    return new
