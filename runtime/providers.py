"""ONNX Runtime execution providers: which ones exist here, which one a backend name means,
and why ``auto`` picked the one it picked.

Backend names (``--backend``) map to provider chains:

- ``ort``      -> CPUExecutionProvider
- ``ort-cuda`` -> CUDAExecutionProvider (onnxruntime-gpu and a GPU torch can see)
- ``ort-trt``  -> TensorrtExecutionProvider, CUDA EP as fallback for what TensorRT declines

Nothing here imports onnxruntime at module import time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
# Backend name -> the execution provider it needs (its chain ends with the CPU EP).
ORT_PROVIDERS = {"ort": CPU_EP, "ort-cuda": CUDA_EP, "ort-trt": TRT_EP}
# What Backend.name reports for each (``ort`` runs on the CPU EP).
ORT_NAMES = {"ort": "ort-cpu", "ort-cuda": "ort-cuda", "ort-trt": "ort-trt"}
_INSTALL_HINT = {
    CUDA_EP: "install onnxruntime-gpu (instead of onnxruntime) on a machine with an NVIDIA GPU",
    TRT_EP: "install onnxruntime-gpu built with TensorRT and the TensorRT libraries",
}


@dataclass(frozen=True)
class Choice:
    """A backend name and the reason it was picked, for logs and the CLI."""

    backend: str
    reason: str

    def __str__(self) -> str:
        return f"{self.backend} ({self.reason})"


def import_onnxruntime():
    """``onnxruntime``, or a ConfigError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as e:
        raise ConfigError(
            "the ONNX Runtime backends need onnxruntime: pip install onnxruntime"
        ) from e
    return onnxruntime


def available_providers() -> list[str]:
    """``onnxruntime.get_available_providers()``: the execution providers of this install."""
    return list(import_onnxruntime().get_available_providers())


def torch_sees_gpu() -> bool:
    """The runtime's buffers are torch tensors: a GPU provider needs a CUDA build of torch."""
    import torch

    return torch.cuda.is_available()


def pick_ort_backend() -> Choice:
    """``auto`` for an artifact: ORT CUDA when onnxruntime-gpu and a GPU are here, else CPU.

    TensorRT is never picked automatically: its first run builds an engine (minutes).
    """
    providers = available_providers()
    if CUDA_EP not in providers:
        return Choice("ort", f"auto: onnxruntime has no CUDA provider (has {', '.join(providers)})")
    if not torch_sees_gpu():
        return Choice("ort", "auto: onnxruntime has the CUDA provider but torch sees no CUDA GPU")
    return Choice("ort-cuda", "auto: onnxruntime-gpu and a CUDA GPU are available")


def check_available(backend: str) -> None:
    """ConfigError with an install hint when ``backend``'s provider or GPU is missing."""
    if backend not in ORT_PROVIDERS:
        known = ", ".join(ORT_PROVIDERS)
        raise ConfigError(f"{backend!r} is not an ONNX Runtime backend ({known})")
    provider = ORT_PROVIDERS[backend]
    providers = available_providers()
    if provider not in providers:
        raise ConfigError(
            f"--backend {backend} needs onnxruntime's {provider}, which this install lacks "
            f"(it has {', '.join(providers)}): {_INSTALL_HINT.get(provider, '')}"
        )
    if provider != CPU_EP and not torch_sees_gpu():
        raise ConfigError(f"--backend {backend} needs a CUDA GPU visible to torch; none found")
