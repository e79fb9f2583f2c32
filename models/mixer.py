"""The PolyMixer layer: projections around the fused op, in step form and clip form."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.config import PoMDiTConfig
from pomexport.models.poly_mixer_op import mix


class PolyMixer(nn.Module):
    """Self-mixing PoM over the tokens of a frame and the committed state.

    Parameters follow docs/design.md §1: ``proj_h`` (``W_h``, width C), ``proj_g`` (gate, width C
    or ``sel_heads``), ``coeff`` (powers only, [C, k]), ``proj_out`` (``W_o``, C -> D).
    """

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        self.attrs = MixerAttrs.from_config(cfg)
        self.variant, self.order, self.gate, self.sel_heads = self.attrs.op_args()
        c = cfg.state_width
        # The official package has no bias on its context projection; HoMM has one.
        self.proj_h = nn.Linear(cfg.width, c, bias=cfg.variant == "moments")
        self.proj_g = nn.Linear(cfg.width, cfg.gate_width)
        self.proj_out = nn.Linear(c, cfg.width)
        if cfg.variant == "powers":
            self.coeff = nn.Parameter((2.0 * torch.randn(c, cfg.order)).clamp(-2.0, 2.0))
        else:
            self.register_parameter("coeff", None)

    def _op(self, h, g, state, count):
        return mix(h, g, state, count, self.coeff, self.attrs)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor, count: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame against the committed state.

        x: (B, N, D), state: (B, C) fp32, count: (B,) fp32 -> y (B, N, D), state_out (B, C).
        """
        y, state_out = self._op(self.proj_h(x), self.proj_g(x), state, count)
        return self.proj_out(y), state_out

    def frame_sums(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of ``P`` over each frame's tokens: x (B, F, N, D) -> (B, F, C) fp32."""
        b, f, n, d = x.shape
        flat = x.reshape(b * f, n, d)
        zeros = flat.new_zeros(b * f, self.proj_h.out_features, dtype=torch.float32)
        _, sums = self._op(self.proj_h(flat), self.proj_g(flat), zeros, zeros.new_zeros(b * f))
        return sums.reshape(b, f, -1)

    def forward_frames(
        self, x: torch.Tensor, prefix: torch.Tensor, prefix_count: torch.Tensor
    ) -> torch.Tensor:
        """All frames of a clip in parallel, frame ``f`` reading the state before it.

        x: (B, F, N, D); prefix: (B, F, C) fp32, the committed sum before each frame;
        prefix_count: (B, F) fp32. Returns y (B, F, N, D).
        """
        b, f, n, d = x.shape
        flat = x.reshape(b * f, n, d)
        y, _ = self._op(
            self.proj_h(flat),
            self.proj_g(flat),
            prefix.reshape(b * f, -1),
            prefix_count.reshape(b * f),
        )
        return self.proj_out(y).reshape(b, f, n, d)


def discounted_read(
    state: torch.Tensor, count: torch.Tensor, decay: float, tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What the op reads of the committed state under a stationary ``decay`` (design §2-3).

    The state contract keeps ``count`` = committed tokens (``f * tokens`` after ``f``
    frames), so every runtime advances it as before; the discounted count is derived here:

        c_d(f) = tokens * (1 - decay**f) / (1 - decay)        (= tokens * f when decay = 1)

    The op then gets ``decay * state`` and ``decay * c_d(f)``, so it computes
    ``y = gate * (decay*state + sum P) / (decay*c_d + N)`` and
    ``state_out = decay*state + sum P`` — the discounted recursion — with the op, its
    kernels and its plugin unchanged. ``decay = 1`` returns the inputs themselves.

    state (..., C) fp32, count (B,) fp32 -> (decay * state, decay * c_d), both fp32.
    """
    # The decay as the graph multiplies the state by it (fp32): the count must discount by
    # the very same factor, or the mean drifts off by their difference (1e-4 at 0.9999). A
    # decay within half an fp32 ulp of 1 is 1 (its c_d would divide 0 by 0).
    d = float(np.float32(decay))
    if d == 1.0:
        return state, count
    # 1 - d**f = 2 t / (1 + t) with t = tanh(f * a / 2), a = -ln d. ``1 - pow(d, f)`` in fp32
    # cancels when d is near 1 (2e-4 relative at d = 0.9999, f = 2; 1.5e-3 at 0.99999); tanh
    # keeps ~1e-7 for every d and saturates to 1 as f grows (an endless stream: N / (1 - d)).
    t = torch.tanh(count * (-math.log(d) / (2.0 * tokens)))
    discounted = (2.0 * tokens / (1.0 - d)) * t / (1.0 + t)
    return state * d, discounted * d


def exclusive_prefix(
    sums: torch.Tensor, state: torch.Tensor, count: torch.Tensor, tokens: int, decay: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-causal prefix: what frame ``f`` sees before its own tokens.

    sums (B, F, C), state (B, C), count (B,) -> prefix (B, F, C), prefix_count (B, F).
    Summed in frame order from ``state`` so the rounding matches committing one at a time;
    with ``decay < 1`` the prefix is the discounted one of :func:`discounted_read`, frame
    by frame exactly as the step form commits.
    """
    if decay != 1.0:
        prefix, prefix_count = [], []
        for f in range(sums.shape[1]):
            read, read_count = discounted_read(state, count + tokens * f, decay, tokens)
            prefix.append(read)
            prefix_count.append(read_count)
            state = read + sums[:, f]
        return torch.stack(prefix, dim=1), torch.stack(prefix_count, dim=1)
    running = torch.cat([state.unsqueeze(1), sums[:, :-1]], dim=1).cumsum(dim=1)
    frames = torch.arange(sums.shape[1], device=sums.device, dtype=torch.float32)
    return running, count.unsqueeze(1) + tokens * frames
