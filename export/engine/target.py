"""Can a TensorRT engine be built on this machine?"""

from __future__ import annotations

import importlib.util

from pomexport.errors import BuildError


def import_tensorrt():
    """The ``tensorrt`` module, or a BuildError saying it is missing."""
    try:
        import tensorrt
    except ImportError as e:
        raise BuildError(
            "TensorRT is not installed (the tensorrt Python package is not importable); "
            "install TensorRT 10.x or 11.x on the target machine"
        ) from e
    return tensorrt


def trt_major(trt) -> int:
    """Major version of the imported TensorRT."""
    return int(trt.__version__.split(".")[0])


def tensorrt_missing() -> str | None:
    """Why a TensorRT engine cannot be built here (None: it can)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (the tensorrt Python package is not importable)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU is visible to torch"
    return None
