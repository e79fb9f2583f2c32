"""Can a TensorRT engine be built on this machine?"""

from __future__ import annotations

import importlib.util


def tensorrt_missing() -> str | None:
    """Why a TensorRT engine cannot be built here (None: it can)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (the tensorrt Python package is not importable)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch"
    return None
