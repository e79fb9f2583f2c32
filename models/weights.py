"""Weights I/O: safetensors with the model config in the header; ``.pt`` only weights-only.

Only safetensors is written. A ``.pt``/``.pth`` is read with ``torch.load(weights_only=True)``
so a pickle can never run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from pomexport.errors import ArtifactError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.models.config import PoMDiTConfig
from pomexport.models.pom_dit import PoMDiT

CONFIG_KEY = "pomexport.config"


def save_weights(model: PoMDiT, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Write ``model``'s weights and config to a safetensors file (atomically)."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {CONFIG_KEY: json.dumps(model.cfg.to_dict())}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return path


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a weights file (safetensors, or weights-only ``.pt``)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"weights file not found: {path}")
    if path.suffix in (".pt", ".pth", ".bin"):
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ArtifactError(
                f"refusing {path.name}: not a weights-only checkpoint ({_why(e)})"
            ) from e
        if isinstance(data, dict) and "state_dict" in data:
            data = data["state_dict"]
        if not isinstance(data, dict):
            raise ArtifactError(f"{path.name} does not hold a state dict")
        return _finite(path, data), {}
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        return _finite(path, load_file(str(path))), meta
    except (SafetensorError, OSError, ValueError) as e:
        raise ArtifactError(f"cannot read weights {path.name}: {e}") from e


def _why(error: Exception) -> str:
    """One line of torch's multi-paragraph refusal: the offending global when it names one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if "Unsupported global" in line]
    return (named or lines or [type(error).__name__])[0][:300]


def _finite(path: Path, tensors: dict) -> dict:
    """Refuse NaN/inf weights: they would only surface as NaN frames much later."""
    for name, tensor in tensors.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            if not bool(torch.isfinite(tensor).all()):
                raise ArtifactError(f"{path.name}: tensor {name!r} holds NaN or inf values")
    return tensors


def load_weights(path: str | os.PathLike, cfg: PoMDiTConfig | None = None) -> PoMDiT:
    """Build a PoMDiT from a weights file; the config comes from the file unless given."""
    tensors, meta = read_state_dict(path)
    if cfg is None:
        if CONFIG_KEY not in meta:
            raise ArtifactError(f"{Path(path).name} carries no model config; pass one")
        cfg = PoMDiTConfig.from_dict(json.loads(meta[CONFIG_KEY]))
    model = PoMDiT(cfg)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"weights do not match the model config: {e}") from e
    return model.eval()
