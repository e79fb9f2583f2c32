"""PoM-DiT blocks: adaLN-zero modulation, PoM self-mixing, optional cross-PoM, MLP."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.config import PoMDiTConfig
from pomexport.models.mixer import PolyMixer
from pomexport.models.polynomial import gate_activation, polynomial_features, select

Mix = Callable[[torch.Tensor], torch.Tensor]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x (B, F, N, D), shift/scale (B, F, 1, D)."""
    return x * (1 + scale) + shift


def adaln_chunks(adaln: nn.Module, c: torch.Tensor, chunks: int) -> tuple[torch.Tensor, ...]:
    """c (B, F, D) -> ``chunks`` modulation vectors (B, F, 1, D), each broadcast over the
    tokens: unsqueezed once before the split, not once per chunk (one graph node, not six)."""
    return adaln(c).unsqueeze(-2).chunk(chunks, dim=-1)


def layer_norm(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)


class CrossPolyMixer(nn.Module):
    """Cross-PoM: image tokens read polynomial moments of the (fixed) text tokens.

    Stateless over frames: the text context is the same for every frame of a stream.
    """

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        self.attrs = MixerAttrs.from_config(cfg)
        c = cfg.state_width
        self.proj_h = nn.Linear(cfg.width, c, bias=cfg.variant == "moments")
        self.proj_g = nn.Linear(cfg.width, cfg.gate_width)
        self.proj_out = nn.Linear(c, cfg.width)
        self.coeff = (
            nn.Parameter((2.0 * torch.randn(c, cfg.order)).clamp(-2.0, 2.0))
            if cfg.variant == "powers"
            else None
        )

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """x (B, F, N, D), text (B, L, D) -> (B, F, N, D)."""
        b, f, n, d = x.shape
        attrs = self.attrs
        p = polynomial_features(self.proj_h(text).float(), attrs.variant, attrs.order, self.coeff)
        context = p.mean(dim=1, keepdim=True).repeat_interleave(f, dim=0)  # (B*F, 1, C)
        g = gate_activation(self.proj_g(x.reshape(b * f, n, d)).float(), attrs.gate)
        y = select(g, context, attrs.sel_heads).to(x.dtype)
        return self.proj_out(y).reshape(b, f, n, d)


class PoMDiTBlock(nn.Module):
    """``x += g1 * mix(adaLN(x)); x += cross(x, text); x += g2 * mlp(adaLN(x))``.

    The self-mixing is passed in as ``mix`` so that one block serves the step form (state
    in/out) and the clip form (block-causal prefixes).
    """

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm1 = layer_norm(d)
        self.mixer = PolyMixer(cfg)
        self.cross = CrossPolyMixer(cfg) if cfg.text_dim else None
        self.norm_cross = layer_norm(d) if cfg.text_dim else None
        self.norm2 = layer_norm(d)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d)
        )
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.adaLN[1].weight)
        nn.init.zeros_(self.adaLN[1].bias)

    def forward(
        self, x: torch.Tensor, c: torch.Tensor, mix: Mix, text: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, F, N, D), c (B, F, D), text (B, L, D) or None."""
        shift1, scale1, gate1, shift2, scale2, gate2 = adaln_chunks(self.adaLN, c, 6)
        x = x + gate1 * mix(modulate(self.norm1(x), shift1, scale1))
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), text)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """adaLN, then a zero-initialised projection back to patches."""

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        d = cfg.width
        self.norm = layer_norm(d)
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
        self.proj = nn.Linear(d, cfg.patch_size * cfg.patch_size * cfg.in_channels)
        for layer in (self.adaLN[1], self.proj):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = adaln_chunks(self.adaLN, c, 2)
        return self.proj(modulate(self.norm(x), shift, scale))
