"""One place that picks the PolyMixer implementation: Triton when it can, the torch op otherwise.

``poly_mixer(h, g, state, count, coeff, attrs)`` computes ``torch.ops.pomexport.poly_mixer``
(its attributes as one ``MixerAttrs``) and never raises for a case a kernel does not cover: it
falls back to the torch op (and logs why, once per reason).
Triton is chosen when all of these hold:

- ``triton`` imports (the optional extra ``pomexport[triton]``);
- the tensors are on CUDA, or on CPU with ``TRITON_INTERPRET=1`` (Triton's interpreter, for CI);
- no autograd is needed (the kernels are forward-only);
- ``triton_poly_mixer.uncovered_reason`` finds nothing (dtype, order, shapes).
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType

import torch
from torch import Tensor

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.poly_mixer_op import OP_NAME, as_op_kernel, mix, poly_mixer_reference

logger = logging.getLogger(__name__)

TORCH = "torch"
TRITON = "triton"


@functools.lru_cache(maxsize=1)
def _triton_module() -> ModuleType | None:
    """The Triton kernel module, or None when triton is not installed or does not load."""
    try:
        from pomexport.runtime.kernels import triton_poly_mixer
    except Exception as e:  # an ImportError, or a broken triton install: both mean "no Triton"
        logger.info("Triton PolyMixer unavailable (%s); using the torch op", e)
        return None
    return triton_poly_mixer


def triton_available() -> bool:
    """Whether the Triton PolyMixer kernels can be imported here."""
    return _triton_module() is not None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def choose_backend(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[str, str]:
    """``(TRITON | TORCH, reason)`` for this call; the reason says why Triton was not picked."""
    module = _triton_module()
    if module is None:
        return TORCH, "triton is not installed"
    if not (h.is_cuda or (h.device.type == "cpu" and _interpreting())):
        return TORCH, f"tensors on {h.device} (Triton needs CUDA, or CPU with TRITON_INTERPRET=1)"
    tensors = [t for t in (h, g, state, count, coeff) if t is not None]
    if any(t.device != h.device for t in tensors):
        return TORCH, "inputs on different devices"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return TORCH, "autograd needed (the Triton kernels are forward-only)"
    reason = module.uncovered_reason(h, g, coeff, attrs)
    if reason is not None:
        return TORCH, reason
    return TRITON, ""


@functools.lru_cache(maxsize=64)
def _log_fallback(reason: str) -> None:
    logger.debug("PolyMixer falls back to the torch op: %s", reason)


def poly_mixer(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[Tensor, Tensor]:
    """PolyMixer forward through the fastest implementation that covers the call.

    Same contract as ``torch.ops.pomexport.poly_mixer``: ``(y (B, N, C), state_out (B, C) fp32)``.
    """
    backend, reason = choose_backend(h, g, state, count, coeff, attrs)
    if backend == TRITON:
        return _triton_module().poly_mixer_triton(h, g, state, count, coeff, attrs)
    _log_fallback(reason)
    return mix(h, g, state, count, coeff, attrs)


def _cuda_kernel(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[Tensor, Tensor]:
    reason = _triton_module().uncovered_reason(h, g, coeff, attrs)
    if reason is not None:
        _log_fallback(reason)
        # not the op itself: that would dispatch back here
        return poly_mixer_reference(h, g, state, count, coeff, attrs)
    return _triton_module().poly_mixer_triton(h, g, state, count, coeff, attrs)


def install_cuda_kernel() -> bool:
    """Make ``torch.ops.pomexport.poly_mixer`` run the Triton kernels for CUDA tensors.

    For the torch CUDA backend (eager or CUDA graphs: the kernels never sync with the host).
    Autograd keeps working: the op's backward recomputes through ``poly_mixer_reference``.
    Uncovered cases run the reference. Returns False (and changes nothing) without Triton.
    """
    if not triton_available():
        return False
    torch.library.register_kernel(OP_NAME, "cuda", as_op_kernel(_cuda_kernel))
    logger.info("torch.ops.pomexport.poly_mixer on CUDA now runs the Triton kernels")
    return True
