"""Shape of an artifact manifest: the tables and fields loaders index without looking.

``load_artifact`` calls :func:`check_manifest` before touching any listed file, so a manifest
that parses as JSON but holds the wrong types (``"batch": null``, a config of strings) is one
ArtifactError naming the field, not a TypeError deep in a backend.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pomexport.errors import ArtifactError, PomExportError
from pomexport.export.artifact.decoder import check_decoder_entry
from pomexport.models.config import PoMDiTConfig


def _fail(path: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{path}: {what}")


def _check_files(path: Path, manifest: dict) -> None:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise _fail(path, "has no 'files' table")
    for name, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
            raise _fail(path, f"files entry {name!r} has no sha256 string")
        size = entry.get("bytes")
        if type(size) is not int or size < 0:  # compared with the file's size before hashing
            raise _fail(path, f"files entry {name!r} has no 'bytes' count")


def _check_io(path: Path, manifest: dict) -> None:
    io = manifest.get("io")
    ok = isinstance(io, dict) and all(
        isinstance(io.get(k), list)
        and all(
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and isinstance(e.get("shape"), list)
            for e in io[k]
        )
        for k in ("inputs", "outputs")
    )
    if not ok:
        raise _fail(path, "'io' must list the named inputs and outputs with their shapes")


def _check_batch(path: Path, manifest: dict) -> None:
    batch = manifest.get("batch")
    values = [batch.get(k) for k in ("min", "opt", "max")] if isinstance(batch, dict) else []
    if (
        not all(type(v) is int for v in values)
        or not values
        or not 1 <= values[0] <= values[1] <= values[2]
    ):
        raise _fail(path, "'batch' must be {min, opt, max} integers, 1 <= min <= opt <= max")


def _check_model(path: Path, manifest: dict) -> None:
    model = manifest.get("model")
    config = model.get("config") if isinstance(model, dict) else None
    if (
        not isinstance(model, dict)
        or not isinstance(model.get("name"), str)
        or not isinstance(config, dict)
    ):
        raise _fail(path, "'model' must hold a name and a config")
    # A field whose default is None (an optional bound) holds an int or null.
    types = {f.name: type(f.default) for f in dataclasses.fields(PoMDiTConfig)}
    types = {k: int if v is type(None) else v for k, v in types.items()}
    optional = {f.name for f in dataclasses.fields(PoMDiTConfig) if f.default is None}
    for key, value in config.items():
        want = types.get(key)
        # JSON has one number type: an int is a fine float; a bool is not an int.
        fits = want is float and type(value) in (int, float) or type(value) is want
        fits = fits or (key in optional and value is None)
        if not fits:
            raise _fail(path, f"model config {key!r} must be a {getattr(want, '__name__', want)}")
    try:
        PoMDiTConfig.from_dict(config)
    except (PomExportError, TypeError, ValueError, ArithmeticError) as e:
        raise _fail(path, f"model config is invalid ({e})") from e


def check_manifest(path: Path, manifest: dict) -> None:
    """Raise ArtifactError (naming the field) unless ``manifest`` has the types loaders need."""
    _check_files(path, manifest)
    flavors = manifest.get("flavors", {})
    if not isinstance(flavors, dict) or not all(isinstance(v, str) for v in flavors.values()):
        raise _fail(path, "'flavors' must map flavor names to file names")
    for key in ("precision", "variant"):
        if not isinstance(manifest.get(key), str):
            raise _fail(path, f"{key!r} must be a string")
    _check_io(path, manifest)
    _check_batch(path, manifest)
    _check_model(path, manifest)
    check_decoder_entry(path, manifest)  # optional: the latent decoder stage
