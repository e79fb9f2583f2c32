"""The fused PolyMixer op: ``torch.ops.pomexport.poly_mixer`` (docs/design.md §2).

This is the single point the exporter maps to ``pomexport::PolyMixer`` and the kernels
(Triton, CUDA) replace. Inputs/outputs:

    h (B, N, C), g (B, N, C | sel_heads), state (B, C) fp32, count (B,) fp32, coeff (C, k) fp32
    -> y (B, N, C) in h's dtype = gate(g) * (state + sum_n P(h_n)) / (count + N)
    -> state_out (B, C) fp32      = state + sum_n P(h_n)

The token sum always accumulates in fp32, whatever the input dtype: a sum of thousands of
degree-4 features overflows fp16.

The attributes travel as one :class:`MixerAttrs` everywhere but in the op's own schema
(``torch.library`` takes primitive arguments): :func:`poly_mixer` is the one place that spells
them out, :func:`mix` calls it with a ``MixerAttrs``, and :func:`as_op_kernel` turns a kernel
taking ``(h, g, state, count, coeff, attrs)`` into one the op can register.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pomexport.export.artifact.contract import TORCH_OP, MixerAttrs
from pomexport.models.polynomial import gate_activation, polynomial_features, select

OP_NAME = TORCH_OP
# A PolyMixer implementation: (h, g, state, count, coeff, attrs) -> (y, state_out).
MixerKernel = Callable[
    [Tensor, Tensor, Tensor, Tensor, Tensor | None, MixerAttrs], tuple[Tensor, Tensor]
]


def poly_mixer_reference(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[Tensor, Tensor]:
    """Plain PyTorch PolyMixer; differentiable; the reference every backend is tested against."""
    coeff = None if coeff is None else coeff.float()
    p = polynomial_features(h.float(), attrs.variant, attrs.order, coeff)
    state_out = state.float() + p.sum(dim=1)
    mean = state_out / (count.float() + h.shape[1]).unsqueeze(-1)
    y = select(gate_activation(g.float(), attrs.gate), mean.unsqueeze(1), attrs.sel_heads)
    return y.to(h.dtype), state_out


@torch.library.custom_op(OP_NAME, mutates_args=())
def poly_mixer(
    h: Tensor,
    g: Tensor,
    state: Tensor,
    count: Tensor,
    coeff: Tensor | None,
    variant: str,
    order: int,
    gate: str,
    sel_heads: int,
) -> tuple[Tensor, Tensor]:
    """The fused op (see module docstring); this is its eager CPU/CUDA implementation."""
    return poly_mixer_reference(
        h, g, state, count, coeff, MixerAttrs(variant, order, gate, sel_heads)
    )


def mix(
    h: Tensor, g: Tensor, state: Tensor, count: Tensor, coeff: Tensor | None, attrs: MixerAttrs
) -> tuple[Tensor, Tensor]:
    """``torch.ops.pomexport.poly_mixer`` with its attributes as one ``MixerAttrs``."""
    return poly_mixer(h, g, state, count, coeff, *attrs.op_args())


def as_op_kernel(kernel: MixerKernel) -> Callable[..., tuple[Tensor, Tensor]]:
    """``kernel`` with the op's argument list, for ``torch.library.register_kernel``."""

    def op_kernel(h, g, state, count, coeff, *attrs):
        return kernel(h, g, state, count, coeff, MixerAttrs(*attrs))

    op_kernel.__name__ = op_kernel.__qualname__ = getattr(kernel, "__name__", "op_kernel")
    return op_kernel


@poly_mixer.register_fake
def _(h, g, state, count, coeff, *attrs):
    return torch.empty_like(h), torch.empty_like(state, dtype=torch.float32)


def _setup_context(ctx, inputs, output) -> None:
    h, g, state, count, coeff, *attrs = inputs
    ctx.save_for_backward(h, g, state, count, coeff)
    ctx.attrs = MixerAttrs(*attrs)
    ctx.has_coeff = coeff is not None


def _backward(ctx, grad_y, grad_state):
    # Recompute through the differentiable reference rather than hand-deriving gradients:
    # training runs on tiny models, and one formula stays the single source of truth.
    h, g, state, count, coeff = ctx.saved_tensors
    leaves = [t.detach().requires_grad_(t.is_floating_point()) for t in (h, g, state)]
    coeff_leaf = coeff.detach().requires_grad_(True) if ctx.has_coeff else None
    with torch.enable_grad():
        y, s = poly_mixer_reference(*leaves, count, coeff_leaf, ctx.attrs)
        inputs = leaves + ([coeff_leaf] if ctx.has_coeff else [])
        grads = torch.autograd.grad((y, s), inputs, (grad_y, grad_state), allow_unused=True)
    grad_coeff = grads[3] if ctx.has_coeff else None
    no_grads = (None,) * len(ctx.attrs.op_args())
    return grads[0], grads[1], grads[2], None, grad_coeff, *no_grads


poly_mixer.register_autograd(_backward, setup_context=_setup_context)
