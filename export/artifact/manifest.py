"""manifest.json: what it says (the IO contract, tool versions, the build's keys), how it is
written (hashes of every file, written last and atomically) and how it is read (bounded,
signature first, schema checked)."""

from __future__ import annotations

import json
import logging
import os
import time
from importlib import metadata
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.export.artifact.contract import (
    DOMAIN,
    OP_TYPE,
    OP_VERSION,
    STEP_INPUTS,
    STEP_OUTPUTS,
    MixerAttrs,
    TensorSpec,
)
from pomexport.export.artifact.layout import (
    DEVICE,
    DEVICE_SIGNATURE,
    FLAVOR_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_DTYPES,
)
from pomexport.export.artifact.limits import Limits, check_json_depth
from pomexport.export.artifact.paths import read_plain_file, sha256_file
from pomexport.export.artifact.schema import check_manifest
from pomexport.export.artifact.signing import (
    MANIFEST_SIGNATURE,
    MAX_SIGNATURE_BYTES,
    TrustedKey,
    check_signature,
)
from pomexport.models.config import PoMDiTConfig

log = logging.getLogger(__name__)

_TOOLS = ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "pomexport")


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (absent ones omitted)."""
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _dims(spec: TensorSpec, cfg: PoMDiTConfig) -> list[int | str]:
    """Symbolic dims resolved against the config; the batch stays the symbol ``B``."""
    known = {
        "C_in": cfg.in_channels,
        "H": cfg.input_size,
        "W": cfg.input_size,
        "L": cfg.depth,
        "C": cfg.state_width,
    }
    return [known.get(d, d) for d in spec.shape]


def io_contract(cfg: PoMDiTConfig, model_dtype: str) -> dict[str, list[dict]]:
    """The step graph's I/O (contract.py) with dims and dtypes resolved for one model."""

    def entry(spec: TensorSpec) -> dict:
        dtype = model_dtype if spec.dtype == "model" else spec.dtype
        shape = _dims(spec, cfg)
        return {"name": spec.name, "shape": shape, "dtype": dtype, "meaning": spec.meaning}

    return {"inputs": [entry(s) for s in STEP_INPUTS], "outputs": [entry(s) for s in STEP_OUTPUTS]}


def build_manifest(
    cfg: PoMDiTConfig,
    model_name: str,
    precision: str,
    flavors: list[str],
    opset: int,
    batch: tuple[int, int, int],
    model_dtype: str | None = None,
    gates: dict | None = None,
) -> dict:
    """Everything but the file hashes (:func:`write_manifest` adds those).

    ``gates``: accuracy tolerances per precision (``export/artifact/gates.py``), read by
    ``pomexport verify``; omitted when None.
    """
    model_dtype = model_dtype or MODEL_DTYPES[precision]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "config": cfg.to_dict()},
        "variant": cfg.variant,
        "precision": precision,
        "flavors": {f: FLAVOR_FILES[f] for f in flavors},
        "opset": opset,
        "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "io": io_contract(cfg, model_dtype),
        "op": {
            "domain": DOMAIN,
            "type": OP_TYPE,
            "version": OP_VERSION,
            "attributes": MixerAttrs.from_config(cfg).to_onnx(),
        },
        "versions": tool_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if gates is not None:
        manifest["gates"] = gates
    return manifest


def member_files(root: Path) -> list[str]:
    """Regular files under ``root`` (posix, relative), without the manifest, its signature,
    the device record (device.json, device.sig) and temp files."""
    names = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in (MANIFEST, MANIFEST_SIGNATURE, DEVICE, DEVICE_SIGNATURE) or any(
            p.startswith(".") for p in Path(rel).parts
        ):
            continue
        if path.is_symlink():
            raise ArtifactError(f"{rel}: refusing to record a symlink in an artifact")
        if path.is_file():
            names.append(rel)
    return names


def file_entry(path: Path) -> dict:
    """``{"sha256": ..., "bytes": ...}``: one file's record in ``manifest["files"]``."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def store_manifest(root: Path, manifest: dict) -> Path:
    """Write ``manifest`` (files included) as ``root``/manifest.json, atomically; a signature
    of the old bytes is removed (sign again), and so is a device record bound to them (the
    new manifest lists its files, as every member file: docs/design.md §6.1)."""
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    for name in (MANIFEST_SIGNATURE, DEVICE, DEVICE_SIGNATURE):
        (root / name).unlink(missing_ok=True)
    atomic_write(root / MANIFEST, lambda tmp: tmp.write_text(text))
    log.info("wrote %s (%d files)", root / MANIFEST, len(manifest.get("files", {})))
    return root / MANIFEST


def write_manifest(root: str | os.PathLike, manifest: dict) -> Path:
    """Hash every file under ``root`` into ``manifest["files"]``; write manifest.json last.

    Other keys are kept as given. A stage adding files to an artifact edits it through
    ``export/artifact/edit.py`` instead, which hashes only what changed and writes once.
    """
    root = Path(root)
    files = {name: file_entry(root / name) for name in member_files(root)}
    return store_manifest(root, {**manifest, "files": files})


def _manifest_bytes(root: Path, limits: Limits) -> bytes:
    path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact directory")
    if path.is_symlink():  # the writer never makes one; whose file would it be?
        raise ArtifactError(f"{path}: is a symlink (a pomexport manifest is a plain file)")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (not a pomexport artifact)")
    size = path.stat().st_size
    if size > limits.manifest_bytes:
        raise ArtifactError(f"{path}: {size} bytes (limit {limits.manifest_bytes})")
    try:
        return path.read_bytes()  # checked and parsed from these bytes: no second read
    except OSError as e:
        raise ArtifactError(f"{path}: unreadable manifest ({e.strerror})") from e


def read_manifest(root: Path, limits: Limits, keys: tuple[TrustedKey, ...]) -> dict:
    """``root``/manifest.json, parsed and checked: bounded size and depth, a trusted
    signature when ``keys`` are given (before any other file is read), format, schema."""
    return read_manifest_bytes(root, limits, keys)[0]


def read_manifest_bytes(
    root: Path, limits: Limits, keys: tuple[TrustedKey, ...]
) -> tuple[dict, bytes]:
    """:func:`read_manifest` and the bytes it parsed (device.json is bound to them)."""
    path = root / MANIFEST
    raw = _manifest_bytes(root, limits)
    sig_path = root / MANIFEST_SIGNATURE
    signature = read_plain_file(sig_path, MAX_SIGNATURE_BYTES, str(sig_path))
    check_signature(str(path), raw, signature, keys)
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path}: unreadable manifest ({str(e)[:200]})") from e
    check_json_depth(str(path), manifest, limits)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {manifest.get('format_version')} unsupported")
    check_manifest(path, manifest)
    return manifest, raw
