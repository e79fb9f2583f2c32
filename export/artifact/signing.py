"""Ed25519 signatures on artifact manifests and bundle listings (issue 22: integrity is not
authenticity).

A manifest lists the sha256 of every file, so a signature over the manifest's bytes covers
the whole artifact (bundle.json likewise covers the bundle). Whoever can write the manifest
can otherwise run code on the device (engines, plugin libraries, build.sh). The signature is
a small JSON file beside the signed one (``manifest.sig``, ``bundle.sig``), never listed in
it (it cannot hash itself):

    {"format": "pomexport-signature", "algorithm": "ed25519", "key_id": "<16 hex>",
     "signature": "<base64 of the 64-byte signature over the exact bytes of the file>"}

Keys are PEM files (PKCS#8 private, SubjectPublicKeyInfo public: what OpenSSL reads).
Trusted public keys come from the caller, else from :func:`use_trusted_keys` (the CLI's
``--trusted-key``), else ``POMEXPORT_TRUSTED_KEYS`` (paths separated by ``os.pathsep``).
With keys configured, loaders refuse anything unsigned or signed by another key before
reading any other file; with none, unsigned use works and says so once per process.

A caller that passes no keys explicitly (``trusted=()``) vouches for the files itself: a
build or the bench reading back what it has just written, whose hashes it made. Keys
configured for loaders do not apply there (an unsigned build is not refused by its own
read-back) and nothing is said.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pomexport.errors import ArtifactError, ConfigError

log = logging.getLogger(__name__)

ENV = "POMEXPORT_TRUSTED_KEYS"
FORMAT = "pomexport-signature"
ALGORITHM = "ed25519"
MANIFEST_SIGNATURE = "manifest.sig"
BUNDLE_SIGNATURE = "bundle.sig"
MAX_SIGNATURE_BYTES = 4096  # a signature file is ~200 bytes
_configured: tuple[TrustedKey, ...] | None = None
_warned = False  # "no trusted keys configured": once per process


def _crypto():
    """The ``cryptography`` package's Ed25519 and serialization modules (lazy import)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as e:
        raise ConfigError(
            "signatures need the cryptography package: pip install 'pomexport[onnx]' "
            "(or pip install cryptography)"
        ) from e
    return ed25519, serialization


@dataclass(frozen=True)
class TrustedKey:
    """A public key a loader accepts signatures from."""

    key_id: str
    public: object  # cryptography's Ed25519PublicKey
    source: str


def key_id(public) -> str:
    """First 16 hex of the sha256 of the raw 32-byte public key (names a key in messages)."""
    _, serialization = _crypto()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``<prefix>.key`` (private, mode 0600, created exclusively:
    an existing key is never overwritten) and ``<prefix>.pub``. Returns both paths."""
    ed25519, serialization = _crypto()
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path}: exists; refusing to overwrite a key")
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        public_path.write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    except OSError as e:
        raise ConfigError(f"cannot write the key pair {prefix}: {e.strerror}") from e
    return private_path, public_path


def _read_small(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > 64 << 10:
            raise ConfigError(f"{path}: too large for a {what}")
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the {what} ({e.strerror})") from e


def load_private_key(path: str | os.PathLike):
    """An Ed25519 private key from a PEM file (``pomexport keygen``'s ``.key``)."""
    ed25519, serialization = _crypto()
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(_read_small(path, "private key"), None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not an unencrypted PEM private key ({e})") from e
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike) -> TrustedKey:
    """An Ed25519 public key from a PEM file (``pomexport keygen``'s ``.pub``)."""
    ed25519, serialization = _crypto()
    path = Path(path)
    try:
        key = serialization.load_pem_public_key(_read_small(path, "public key"))
    except ValueError as e:
        raise ConfigError(f"{path}: not a PEM public key ({e})") from e
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return TrustedKey(key_id(key), key, str(path))


def use_trusted_keys(paths: Sequence[str | os.PathLike] | None) -> None:
    """Set the process-wide trusted keys (the CLI's ``--trusted-key``); None: back to the
    environment."""
    global _configured
    _configured = None if paths is None else tuple(load_public_key(p) for p in paths)


def trusted_keys(keys: Sequence[TrustedKey] | None = None) -> tuple[TrustedKey, ...]:
    """The keys to enforce: ``keys`` (``()``: the caller vouches, module docstring), else
    :func:`use_trusted_keys`'s, else the environment's (empty: none configured, unsigned use
    allowed, said once per process)."""
    if keys is not None:
        return tuple(keys)
    found = configured_keys()
    if not found:
        _warn_unconfigured()
    return found


def configured_keys() -> tuple[TrustedKey, ...]:
    """:func:`use_trusted_keys`'s keys, else the environment's; nothing said when none."""
    if _configured is not None:
        return _configured
    value = os.environ.get(ENV, "").strip()
    return tuple(load_public_key(p) for p in value.split(os.pathsep) if p)


def _warn_unconfigured() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "no trusted keys configured (--trusted-key, %s): artifacts and bundles are checked "
            "for integrity only, not authenticity",
            ENV,
        )


def signature_document(data: bytes, private) -> bytes:
    """The signature file's bytes for ``data`` signed with ``private``."""
    doc = {
        "format": FORMAT,
        "algorithm": ALGORITHM,
        "key_id": key_id(private.public_key()),
        "signature": base64.b64encode(private.sign(data)).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def _parse(what: str, raw: bytes) -> tuple[str, bytes]:
    try:
        doc = json.loads(raw)
        ok = isinstance(doc, dict) and doc.get("format") == FORMAT
        ok = ok and doc.get("algorithm") == ALGORITHM and isinstance(doc.get("key_id"), str)
        signature = base64.b64decode(doc["signature"], validate=True) if ok else b""
    except (ValueError, TypeError, KeyError, RecursionError) as e:
        raise ArtifactError(f"{what}: unreadable signature ({str(e)[:100]})") from e
    if len(signature) != 64:
        raise ArtifactError(f"{what}: not a {FORMAT} ({ALGORITHM}) signature")
    return doc["key_id"][:64], signature


def check_signature(
    what: str, data: bytes, signature: bytes | None, keys: Sequence[TrustedKey]
) -> TrustedKey | None:
    """Verify ``signature`` (the signature file's bytes, None: absent) over ``data``.

    No keys: accepted (None returned; :func:`trusted_keys` said so when none were
    configured). With keys: an ArtifactError line for unsigned, unreadable, signed by an
    untrusted key, or not matching.
    """
    if not keys:
        return None
    if signature is None:
        raise ArtifactError(
            f"{what}: unsigned, and {len(keys)} trusted key(s) are configured; refusing it"
        )
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise ArtifactError(f"{what}: signature file of {len(signature)} bytes (too large)")
    signer, raw = _parse(what, signature)
    for key in keys:
        if key.key_id == signer:
            try:
                key.public.verify(raw, data)
            except Exception as e:  # cryptography's InvalidSignature
                raise ArtifactError(
                    f"{what}: signature by key {signer} does not match its bytes (modified "
                    "after signing); refusing it"
                ) from e
            return key
    raise ArtifactError(f"{what}: signed by key {signer}, which is not a trusted key")


def sign_artifact(root: str | os.PathLike, private_key: str | os.PathLike) -> Path:
    """Sign ``root``/manifest.json with ``private_key``: writes ``manifest.sig`` atomically."""
    from pomexport.export.artifact.atomic import atomic_write
    from pomexport.export.artifact.layout import MANIFEST

    root = Path(root)
    private = load_private_key(private_key)
    document = signature_document((root / MANIFEST).read_bytes(), private)
    target = root / MANIFEST_SIGNATURE
    atomic_write(target, lambda tmp: tmp.write_bytes(document))
    log.info("signed %s with key %s", root / MANIFEST, key_id(private.public_key()))
    return target
