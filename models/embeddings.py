"""Positional, timestep, label and frame embeddings of PoM-DiT.

The sinusoidal parts are computed in fp32 (the fp16 export keeps them there, docs/design.md §4).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pomexport.models.config import PoMDiTConfig


def frequencies(dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """The ``dim // 2`` angular frequencies of :func:`sincos`, fp32, geometric down from 1."""
    half = dim // 2
    return torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)


def sincos(positions: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Sinusoidal features: positions (...) -> (..., 2 * len(freqs)), fp32."""
    angles = positions.float().unsqueeze(-1) * freqs.float()
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """Fixed 2D sin-cos positions within a frame: (grid*grid, dim), row-major patches."""
    coords = torch.arange(grid, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    freqs = frequencies(dim // 2)
    return torch.cat([sincos(rows.flatten(), freqs), sincos(cols.flatten(), freqs)], dim=-1)


class TimestepEmbedder(nn.Module):
    """Flow time t in [0, 1] -> conditioning vector (sinusoid of 1000 t, then an MLP)."""

    def __init__(self, width: int, freq_dim: int = 256) -> None:
        super().__init__()
        # A buffer, not recomputed in forward: the exporter would constant-fold the exp with
        # its own rounding (1 ulp off on 55 of 128 values) and at angles up to 1000 rad
        # that moved ONNX Runtime's v and state by ~1e-4 from torch's.
        self.register_buffer("freqs", frequencies(freq_dim), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(freq_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sincos(t * 1000.0, self.freqs))


class FrameEmbedder(nn.Module):
    """Frame index -> token offset. Sinusoids of the index, so unseen indices stay smooth."""

    def __init__(self, width: int, freq_dim: int = 64) -> None:
        super().__init__()
        self.register_buffer("freqs", frequencies(freq_dim, 1000.0), persistent=False)
        self.proj = nn.Linear(freq_dim, width)
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def forward(self, frame_index: torch.Tensor) -> torch.Tensor:
        return self.proj(sincos(frame_index, self.freqs))


class PatchEmbed(nn.Module):
    """(B, C_in, H, W) -> (B, N, D) patch tokens plus fixed 2D positions."""

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_channels, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        self.register_buffer("pos", sincos_2d(cfg.grid, cfg.width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2) + self.pos
