"""The Polynomial Mixer's math, step by step, next to docs/design.md §1.

Two formulations share one structure: polynomial features ``P`` of the context tokens are
averaged (aggregation), and every query token reads the average through a gate (selection).

- ``moments`` (PoM paper, HoMM code): ``a_j = gelu(h_j)`` on ``k`` chunks of ``h``,
  ``p_1 = a_1, p_j = p_{j-1} * a_j``, ``P = concat(p_1..p_k)``; gate ``sigmoid``.
- ``powers`` (official ``pom`` package): ``a = clamp(leaky_relu(h, 0.01), -0.1, 6)``,
  ``P = sum_j coeff[:, j-1] * a**j`` for ``j = 1..k``; gate ``hardsigmoid``.

Everything here is plain PyTorch and computes in the dtype it is given; callers that need
fp32 accumulation cast first (see ``poly_mixer_reference``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pomexport.models.config import GATES, VARIANTS

# The official package's activation range: leaky_relu, then clamp into [-0.1, 6].
POWERS_CLAMP = (-0.1, 6.0)
POWERS_SLOPE = 0.01


def moments_features(h: torch.Tensor, order: int) -> torch.Tensor:
    """Products of gelu'd chunks: ``h (..., C) -> P (..., C)`` with ``C = order * width``."""
    chunks = F.gelu(h).chunk(order, dim=-1)
    products = [chunks[0]]
    for a in chunks[1:]:
        products.append(products[-1] * a)
    return torch.cat(products, dim=-1)


def powers_features(h: torch.Tensor, coeff: torch.Tensor, order: int) -> torch.Tensor:
    """Learned polynomial per channel: ``h (..., C), coeff (C, k) -> P (..., C)``."""
    a = F.leaky_relu(h, POWERS_SLOPE).clamp(*POWERS_CLAMP)
    coeff = coeff.to(a.dtype)
    power = a
    p = coeff[:, 0] * power
    for j in range(1, order):
        power = power * a
        p = p + coeff[:, j] * power
    return p


def polynomial_features(
    h: torch.Tensor, variant: str, order: int, coeff: torch.Tensor | None = None
) -> torch.Tensor:
    """``P(h)`` of either variant; ``coeff`` is required for ``powers``."""
    if variant == "moments":
        return moments_features(h, order)
    if variant == "powers":
        if coeff is None:
            raise ValueError("the 'powers' variant needs its coefficients [C, k]")
        return powers_features(h, coeff, order)
    raise ValueError(f"unknown PoM variant {variant!r}; expected one of {VARIANTS}")


def gate_activation(g: torch.Tensor, gate: str) -> torch.Tensor:
    """The selection gate's nonlinearity."""
    if gate == "sigmoid":
        return torch.sigmoid(g)
    if gate == "hardsigmoid":
        return F.hardsigmoid(g)
    raise ValueError(f"unknown gate {gate!r}; expected one of {GATES}")


def select(gate: torch.Tensor, context: torch.Tensor, sel_heads: int) -> torch.Tensor:
    """Read the context through the gate.

    gate: (B, N, C) elementwise, or (B, N, H) with one gate per selection head;
    context: (B, 1, C) or (B, N, C). Returns (B, N, C).
    """
    if sel_heads <= 1:
        return gate * context
    b, n, _ = gate.shape
    c = context.shape[-1]
    heads = context.reshape(*context.shape[:-1], sel_heads, c // sel_heads)
    return (gate.unsqueeze(-1) * heads).reshape(b, n, c)
