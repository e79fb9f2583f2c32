"""The fused PolyMixer op: ``torch.ops.pomexport.poly_mixer`` (docs/design.md §2).

This is the single point the exporter maps to ``pomexport::PolyMixer`` and the kernels
(Triton, CUDA) replace. Inputs/outputs:

    h (B, N, C), g (B, N, C | sel_heads), state (B, C) fp32, count (B,) fp32, coeff (C, k) fp32
    -> y (B, N, C) in h's dtype = gate(g) * (state + sum_n P(h_n)) / (count + N)
    -> state_out (B, C) fp32      = state + sum_n P(h_n)

The token sum always accumulates in fp32, whatever the input dtype: a sum of thousands of
degree-4 features overflows fp16.
"""

from __future__ import annotations

import torch

from pomexport.models.polynomial import gate_activation, polynomial_features, select

OP_NAME = "pomexport::poly_mixer"


def poly_mixer_reference(
    h: torch.Tensor,
    g: torch.Tensor,
    state: torch.Tensor,
    count: torch.Tensor,
    coeff: torch.Tensor | None,
    variant: str,
    order: int,
    gate: str,
    sel_heads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain PyTorch PolyMixer; differentiable; the reference every backend is tested against."""
    p = polynomial_features(h.float(), variant, order, None if coeff is None else coeff.float())
    state_out = state.float() + p.sum(dim=1)
    mean = state_out / (count.float() + h.shape[1]).unsqueeze(-1)
    y = select(gate_activation(g.float(), gate), mean.unsqueeze(1), sel_heads)
    return y.to(h.dtype), state_out


@torch.library.custom_op(OP_NAME, mutates_args=())
def poly_mixer(
    h: torch.Tensor,
    g: torch.Tensor,
    state: torch.Tensor,
    count: torch.Tensor,
    coeff: torch.Tensor | None,
    variant: str,
    order: int,
    gate: str,
    sel_heads: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused op (see module docstring); this is its eager CPU/CUDA implementation."""
    return poly_mixer_reference(h, g, state, count, coeff, variant, order, gate, sel_heads)


@poly_mixer.register_fake
def _(h, g, state, count, coeff, variant, order, gate, sel_heads):
    return torch.empty_like(h), torch.empty_like(state, dtype=torch.float32)


def _setup_context(ctx, inputs, output) -> None:
    h, g, state, count, coeff, *attrs = inputs
    ctx.save_for_backward(h, g, state, count, coeff)
    ctx.attrs = attrs
    ctx.has_coeff = coeff is not None


def _backward(ctx, grad_y, grad_state):
    # Recompute through the differentiable reference rather than hand-deriving gradients:
    # training runs on tiny models, and one formula stays the single source of truth.
    h, g, state, count, coeff = ctx.saved_tensors
    leaves = [t.detach().requires_grad_(t.is_floating_point()) for t in (h, g, state)]
    coeff_leaf = coeff.detach().requires_grad_(True) if ctx.has_coeff else None
    with torch.enable_grad():
        y, s = poly_mixer_reference(*leaves, count, coeff_leaf, *ctx.attrs)
        inputs = leaves + ([coeff_leaf] if ctx.has_coeff else [])
        grads = torch.autograd.grad((y, s), inputs, (grad_y, grad_state), allow_unused=True)
    grad_coeff = grads[3] if ctx.has_coeff else None
    return grads[0], grads[1], grads[2], None, grad_coeff, None, None, None, None


poly_mixer.register_autograd(_backward, setup_context=_setup_context)
