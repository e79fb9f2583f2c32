"""Pick a backend for a model name, weights file or model object (``--backend``/``--device``).

Only backends that exist are listed (``runtime/_choices.py``); the ONNX Runtime and
TensorRT backends add their names there and their loaders here when they land.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pomexport.errors import ConfigError
from pomexport.runtime._choices import BACKENDS

if TYPE_CHECKING:
    from pomexport.runtime.backend import Backend

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "load_backend"]


def load_backend(
    source: str | os.PathLike | object,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
) -> Backend:
    """A ready backend for ``source``: a model name (bundled or preset, random init by
    ``seed``), a weights file, or a ``PoMDiT``. ``auto`` picks the best backend available."""
    if backend not in ("auto", *BACKENDS):
        raise ConfigError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.runtime.torch_backend import TorchBackend

    model = source if isinstance(source, PoMDiT) else _load_model(source, seed)
    picked = TorchBackend(model, device=device)
    logger.info(
        "backend %s on %s (%s)",
        picked.name,
        picked.device,
        "requested" if backend != "auto" else "the only backend for torch weights",
    )
    return picked


def _load_model(source: str | os.PathLike, seed: int):
    from pomexport.models.registry import load_model

    return load_model(source, seed=seed)
