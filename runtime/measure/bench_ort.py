"""ONNX Runtime rows of ``pomexport bench``: backend factories for :data:`bench.BACKENDS`.

A bench row gets a ``PoMDiT``; ONNX Runtime needs an artifact. The factories export the
model (portable flavor only) once and keep the artifact in a cache directory keyed by the
model's weights and config, the precision, and the exporter's source code, so the rows of a
series — each in its own spawned process — share one export instead of re-exporting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pomexport.errors import ArtifactError
from pomexport.export.artifact.layout import MANIFEST

if TYPE_CHECKING:
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.runtime.ort_backend import OrtBackend

logger = logging.getLogger(__name__)

CACHE_ENV = "POMEXPORT_BENCH_CACHE"  # where exported bench artifacts are kept


def cache_root() -> Path:
    """``$POMEXPORT_BENCH_CACHE`` or ``<tmp>/pomexport-bench-artifacts``."""
    default = Path(tempfile.gettempdir()) / "pomexport-bench-artifacts"
    return Path(os.environ.get(CACHE_ENV, default))


def _exporter_digest() -> str:
    """sha256 of the sources that shape an exported graph, the exporter's and the traced
    model's (``export/``, ``models/``): a changed exporter or model code never reuses an old
    artifact."""
    import pomexport.export as export
    import pomexport.models as models

    digest = hashlib.sha256()
    for package in (export, models):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{package.__name__}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def artifact_key(model: PoMDiT, precision: str) -> str:
    """Content key of (weights, config, precision, exporter and model code)."""
    import torch

    digest = hashlib.sha256()
    digest.update(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    digest.update(precision.encode())
    digest.update(_exporter_digest().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def cached_artifact(model: PoMDiT, precision: str) -> Path:
    """The portable artifact of ``model`` at ``precision``, exported on the first call."""
    from pomexport.export.api import export_model

    final = cache_root() / f"{artifact_key(model, precision)}-{precision}"
    if (final / MANIFEST).is_file():
        return final
    logger.info("exporting the bench artifact %s", final)
    return publish_staged(
        final, lambda staging: export_model(model, staging, precision, "portable")
    )


def publish_staged(final: Path, write: Callable[[Path], object]) -> Path:
    """Have ``write`` fill a staging directory beside ``final``, then rename it into place.

    Several bench processes may fill the same cache entry at once: the first rename wins and
    the others keep its result.
    """
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        write(staging)
        try:
            os.replace(staging, final)
        except OSError:  # another process finished the same entry first
            if not (final / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def ort_cpu(model: PoMDiT, precision: str = "fp32") -> OrtBackend:
    """ONNX Runtime CPU EP on the model's ``precision`` artifact; threads follow torch's."""
    from torch import get_num_threads as torch_threads

    from pomexport.runtime.ort_backend import OrtBackend

    artifact = load_cached(cached_artifact(model, precision))
    return OrtBackend(artifact, backend="ort", threads=torch_threads())


def load_cached(path: Path):
    """A bench cache entry, loaded and hash-verified; no signature asked of it: the bench
    wrote it itself (``export/artifact/signing.py``), so trusted keys configured for the
    user's artifacts neither refuse it nor are reported for it. That holds only while no one
    else can write the cache: the entry and the cache folder must be this user's and not
    writable by others (the default folder is in the shared temporary directory)."""
    from pomexport.export.artifact import load_artifact

    for folder in (path.parent, path):
        _check_private(folder)
    return load_artifact(path, trusted=())


def _check_private(folder: Path) -> None:
    if not hasattr(os, "getuid"):  # no POSIX owners here
        return
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise ArtifactError(
            f"{folder}: the bench cache must be yours and writable by you only (another user "
            f"could plant an entry it would load unsigned); set {CACHE_ENV} to a private folder"
        )
