"""Pick and load a backend for what the user named (``--backend``/``--device``).

A *source* is either a built artifact directory (``pomexport build``/``export`` output,
recognised by its ``manifest.json``), run by ONNX Runtime or TensorRT, or a model — bundled
name, preset (random init by ``seed``), weights file or ``PoMDiT`` — run by torch.

``auto`` picks the best backend available: for an artifact, TensorRT when it is installed, a
GPU is here and the artifact holds a TensorRT engine (``pomexport build --backend trt``), else
ONNX Runtime's CUDA EP when onnxruntime-gpu and a GPU are here, else its CPU EP; for a model,
torch (on ``device``).
:func:`choose_backend` says what it picked and why; :func:`load_backend` loads it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact.layout import MANIFEST
from pomexport.runtime.choices import ARTIFACT_BACKENDS, BACKENDS, TRT_BACKEND
from pomexport.runtime.providers import Choice

if TYPE_CHECKING:
    from pomexport.runtime.backend import Backend

logger = logging.getLogger(__name__)

__all__ = ["BACKENDS", "Choice", "choose_backend", "is_artifact", "load_backend"]


def is_artifact(source: object) -> bool:
    """True for a path naming an artifact directory (or a directory meant as one)."""
    if not isinstance(source, str | os.PathLike):
        return False
    path = Path(source)
    return path.is_dir() or path.name == MANIFEST


def _artifact_root(source: str | os.PathLike) -> Path:
    path = Path(source)
    return path.parent if path.name == MANIFEST else path


def choose_backend(source: object, backend: str = "auto", device: str = "auto") -> Choice:
    """The backend ``source`` will run on and why (no model or session is loaded)."""
    if backend not in ("auto", *BACKENDS):
        raise ConfigError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
    if not is_artifact(source):
        if backend in ARTIFACT_BACKENDS:
            raise ConfigError(
                f"--backend {backend} runs a built artifact, and {source!s} is a model: "
                f"run `pomexport build {source!s} --out DIR`, then generate from DIR"
            )
        why = "requested" if backend == "torch" else "auto: a model name or weights run on torch"
        return Choice("torch", why)
    if backend == "torch":
        raise ConfigError(
            f"{source}: an artifact holds ONNX graphs, not torch weights; "
            f"use --backend {' or '.join(('auto', *ARTIFACT_BACKENDS))}, or give the model name"
        )
    if backend in ARTIFACT_BACKENDS:
        return Choice(backend, "requested")
    if device == "cpu":
        return Choice("ort", "auto with --device cpu")
    trt_engine = _trt_engine_reason(source)
    if trt_engine is not None:
        return Choice(TRT_BACKEND, trt_engine)
    from pomexport.runtime.providers import pick_ort_backend

    return pick_ort_backend()


def _trt_engine_reason(source: str | os.PathLike) -> str | None:
    """Why ``auto`` runs the artifact on TensorRT (None: it does not): TensorRT and a GPU are
    here and the manifest records an engine (built by ``pomexport build --backend trt``)."""
    from pomexport.export.engine.target import tensorrt_missing

    if tensorrt_missing() is not None:
        return None
    plans = _recorded_engines(_artifact_root(source))
    if not plans:
        return None
    name = Path(plans[0]).name
    return f"auto: TensorRT and a CUDA GPU are available and the artifact has {name}"


def _recorded_engines(root: Path) -> list[str]:
    """The engine plans ``root``'s manifest (or its device.json: an engine built into a
    committed artifact) records; none when it cannot be read (the backend that loads the
    artifact then says why)."""
    from pomexport.export.artifact.device import with_device_files
    from pomexport.export.artifact.engines import recorded_engines
    from pomexport.export.artifact.limits import DEFAULT_LIMITS
    from pomexport.export.artifact.manifest import read_manifest_bytes
    from pomexport.export.artifact.signing import trusted_keys

    try:  # hashes: checked by the load
        keys = trusted_keys()
        manifest, raw = read_manifest_bytes(root, DEFAULT_LIMITS, keys)
        manifest = with_device_files(root, manifest, raw, keys)
    except (ArtifactError, ConfigError):
        return []
    return recorded_engines(manifest)


def load_backend(
    source: str | os.PathLike | object,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
) -> Backend:
    """A ready backend for ``source``: an artifact directory (ONNX Runtime), a model name
    (bundled or preset, random init by ``seed``), a weights file, or a ``PoMDiT`` (torch).
    ``auto`` picks the best backend available (see :func:`choose_backend`)."""
    choice = choose_backend(source, backend, device)
    if choice.backend == "torch":
        picked = _torch_backend(source, device, seed)
    elif choice.backend == TRT_BACKEND:
        picked = _trt_backend(source, device)
    else:
        picked = _ort_backend(source, choice.backend, device)
    logger.info("backend %s on %s (%s)", picked.name, picked.device, choice.reason)
    return picked


def _torch_backend(source, device: str, seed: int) -> Backend:
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.runtime.torch_backend import TorchBackend

    model = source if isinstance(source, PoMDiT) else _load_model(source, seed)
    picked = TorchBackend(model, device=device)
    if picked.device.type == "cpu":
        _cpu_threads()
    return picked


def _cpu_threads() -> None:
    """The thread policy of ``runtime/threads.py`` for torch on the CPU: never more intra-op
    threads than idle cores (``OMP_NUM_THREADS`` when set); a lower count already chosen
    (``torch.set_num_threads``) is kept."""
    import torch

    from pomexport.runtime.threads import cpu_threads

    torch.set_num_threads(min(torch.get_num_threads(), cpu_threads()))


def _ort_backend(source, backend: str, device: str) -> Backend:
    if backend == "ort" and device == "cuda":
        raise ConfigError("--backend ort is ONNX Runtime on the CPU; use --backend ort-cuda")
    if backend != "ort" and device == "cpu":
        raise ConfigError(f"--backend {backend} runs on a GPU; use --backend ort with --device cpu")
    from pomexport.runtime.ort_backend import OrtBackend

    return OrtBackend(_artifact_root(source), backend=backend)


def _trt_backend(source, device: str) -> Backend:
    if device == "cpu":
        raise ConfigError("--backend trt runs on a GPU; use --backend ort with --device cpu")
    from pomexport.runtime.trt_backend import TrtBackend

    return TrtBackend(_artifact_root(source))


def _load_model(source: str | os.PathLike, seed: int):
    from pomexport.models.registry import load_model

    try:
        return load_model(source, seed=seed)
    except ConfigError as e:
        if os.sep in str(source) and not Path(source).suffix:
            raise ArtifactError(f"{source}: no such artifact directory") from e
        raise
