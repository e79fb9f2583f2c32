"""Softmax-attention baseline: the DiT that PoM-DiT replaces, for the benchmark.

Same width, depth, patching, embeddings, adaLN-zero blocks and conditioning as a
``PoMDiTConfig``; only the token mixer differs: multi-head softmax attention
(``torch.nn.functional.scaled_dot_product_attention``), block-causal by frame (the tokens of
frame f attend to every token of frames 0..f). Two ways to generate a frame:

- ``step`` with a ``KVCache``: the keys/values of committed (clean, t=0) frames are kept per
  layer, the current frame attends to them plus its own tokens. Cost and memory grow with
  the number of committed frames.
- ``step_recompute``: no cache; the clean frames so far plus the current noisy frame are
  re-run through ``forward_clip`` at every step (cost grows quadratically).

Both compute exactly what ``forward_clip`` computes over the clean prefix, like PoM-DiT's
``step`` equals its ``forward_teacher_forced``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pomexport.errors import ConfigError, StateError
from pomexport.models.config import PoMDiTConfig
from pomexport.models.dit import FinalLayer, adaln_chunks, layer_norm, modulate
from pomexport.models.embeddings import FrameEmbedder, PatchEmbed, TimestepEmbedder
from pomexport.models.presets import get_preset
from pomexport.models.registry import randomize

Mix = Callable[[torch.Tensor], torch.Tensor]


def default_head_dim(width: int) -> int:
    """64 as in DiT for the S/B/L/XL widths; ``width // 6`` (6 heads) for smaller models."""
    return 64 if width >= 384 and width % 64 == 0 else width // 6


@dataclass(frozen=True)
class KVCache:
    """Keys and values of committed frames, preallocated for ``capacity`` tokens.

    keys/values: (L, B, H, capacity, head_dim). Slots ``[:length]`` hold committed frames;
    the next frame's slot ``[length:length+N]`` is scratch that every step overwrites, so a
    denoising step copies nothing and a commit only advances ``length``.
    """

    keys: torch.Tensor
    values: torch.Tensor
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.keys.shape[3]

    def nbytes(self, tokens: int | None = None) -> int:
        """Bytes of keys + values for ``tokens`` positions (default: the committed ones)."""
        used = self.length if tokens is None else tokens
        per_token = 2 * self.keys[:, :, :, :1].numel() * self.keys.element_size()
        return used * per_token


class SelfAttention(nn.Module):
    """Multi-head softmax attention: ``qkv`` projection, SDPA, output projection."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def project(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """u (B, T, D) -> q, k, v, each (B, H, T, D/H)."""
        b, n, d = u.shape
        qkv = self.qkv(u).reshape(b, n, 3, self.heads, d // self.heads)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q (B, H, Tq, hd), k/v (B, H, Tk, hd), mask (Tq, Tk) bool or None -> (B, Tq, D)."""
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(y.transpose(1, 2).flatten(2))


class AttentionBlock(nn.Module):
    """``x += g1 * attn(adaLN(x)); x += g2 * mlp(adaLN(x))`` — PoMDiTBlock with attention."""

    def __init__(self, cfg: PoMDiTConfig, heads: int) -> None:
        super().__init__()
        d = cfg.width
        self.norm1 = layer_norm(d)
        self.attn = SelfAttention(d, heads)
        self.norm2 = layer_norm(d)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d)
        )
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.adaLN[1].weight)
        nn.init.zeros_(self.adaLN[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mix: Mix) -> torch.Tensor:
        """x (B, F, N, D), c (B, F, D); ``mix`` maps (B, F, N, D) -> (B, F, N, D)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = adaln_chunks(self.adaLN, c, 6)
        x = x + gate1 * mix(modulate(self.norm1(x), shift1, scale1))
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))


def block_causal_mask(frames: int, tokens: int, device=None) -> torch.Tensor:
    """(F*N, F*N) bool, True where the query's frame >= the key's frame."""
    frame_of = torch.arange(frames, device=device).repeat_interleave(tokens)
    return frame_of.unsqueeze(1) >= frame_of.unsqueeze(0)


def block_causal_attend(
    attn: SelfAttention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, frames: int
) -> torch.Tensor:
    """Block-causal attention without a mask: frame f's queries against keys of frames 0..f.

    q, k, v (B, H, F*N, hd) -> (B, F*N, D). Same result as SDPA with
    ``block_causal_mask``, at half its work and without a (F*N)^2 mask: one SDPA per frame.
    """
    n = q.shape[2] // frames
    outs = [
        attn.attend(q[:, :, i * n : (i + 1) * n], k[:, :, : (i + 1) * n], v[:, :, : (i + 1) * n])
        for i in range(frames)
    ]
    return torch.cat(outs, dim=1)


class AttentionDiT(nn.Module):
    """Class-conditional video DiT with block-causal softmax attention over frames."""

    def __init__(self, cfg: PoMDiTConfig, head_dim: int | None = None) -> None:
        super().__init__()
        if cfg.text_dim or not cfg.video:
            raise ConfigError("the attention baseline covers class-conditional video configs")
        head_dim = head_dim or default_head_dim(cfg.width)
        if cfg.width % head_dim:
            raise ConfigError(f"width {cfg.width} is not a multiple of head_dim {head_dim}")
        self.cfg = cfg
        self.heads = cfg.width // head_dim
        d = cfg.width
        self.patch = PatchEmbed(cfg)
        self.time = TimestepEmbedder(d)
        self.frame = FrameEmbedder(d)
        self.label = nn.Embedding(cfg.num_classes + 1, d)  # num_classes = the null label
        self.blocks = nn.ModuleList(AttentionBlock(cfg, self.heads) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)

    def empty_cache(self, batch: int, frames: int, device=None) -> KVCache:
        """A KV cache with room for ``frames`` frames (committed ones plus the current)."""
        shape = (
            self.cfg.depth,
            batch,
            self.heads,
            frames * self.cfg.tokens_per_frame,
            self.cfg.width // self.heads,
        )
        return KVCache(torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def _run(self, x, t, cond, frame_index, mixes: list[Mix]) -> torch.Tensor:
        """x (B, F, C_in, H, W), t (B, F), frame_index (B, F) -> v (B, F, C_in, H, W)."""
        b, f = x.shape[:2]
        tokens = self.patch(x.flatten(0, 1)).unflatten(0, (b, f))
        tokens = tokens + self.frame(frame_index).unsqueeze(-2)
        c = self.time(t) + self.label(cond).unsqueeze(1)
        for block, mix in zip(self.blocks, mixes, strict=True):
            tokens = block(tokens, c, mix)
        out = self.final(tokens, c)
        p, g, ch = self.cfg.patch_size, self.cfg.grid, self.cfg.in_channels
        out = out.reshape(b, f, g, g, p, p, ch).permute(0, 1, 6, 2, 4, 3, 5)
        return out.reshape(b, f, ch, g * p, g * p)

    def forward_clip(
        self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, frame_index: torch.Tensor
    ) -> torch.Tensor:
        """Every frame of a clip in parallel, block-causal.

        x (B, F, C_in, H, W); t (B, F); cond (B,) int64; frame_index (B, F) -> v (B, F, ...).
        """
        f = x.shape[1]

        def mix_for(block: AttentionBlock) -> Mix:
            def mix(u: torch.Tensor) -> torch.Tensor:
                q, k, v = block.attn.project(u.flatten(1, 2))
                return block_causal_attend(block.attn, q, k, v, f).unflatten(1, (f, -1))

            return mix

        return self._run(x, t, cond, frame_index, [mix_for(blk) for blk in self.blocks])

    def step(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
        cache: KVCache,
    ) -> tuple[torch.Tensor, KVCache]:
        """One step of one frame against the KV cache.

        x_t (B, C_in, H, W); t (B,); cond (B,) int64; frame_index (B,) int64 -> v, cache_out.
        ``cache_out`` has this frame committed: keep it after the t=0 (clean) step, drop it
        after a denoising step (as PoM-DiT drops ``state_out``). Both share the buffers.
        """
        n = self.cfg.tokens_per_frame
        start, end = cache.length, cache.length + n
        if end > cache.capacity:
            raise StateError(f"KV cache full: {cache.capacity} tokens, frame needs {end}")

        def mix_for(layer: int) -> Mix:
            attn = self.blocks[layer].attn

            def mix(u: torch.Tensor) -> torch.Tensor:
                q, k, v = attn.project(u[:, 0])
                cache.keys[layer, :, :, start:end] = k
                cache.values[layer, :, :, start:end] = v
                keys, values = cache.keys[layer, :, :, :end], cache.values[layer, :, :, :end]
                return attn.attend(q, keys, values).unsqueeze(1)

            return mix

        mixes = [mix_for(i) for i in range(self.cfg.depth)]
        v = self._run(x_t.unsqueeze(1), t.unsqueeze(1), cond, frame_index.unsqueeze(1), mixes)
        return v[:, 0], KVCache(cache.keys, cache.values, end)

    def step_recompute(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
        clean: torch.Tensor,
    ) -> torch.Tensor:
        """One step of one frame by re-running the whole clip so far (no cache).

        clean (B, P, C_in, H, W): the P committed frames, at frame indices
        ``frame_index - P .. frame_index - 1``. Returns v (B, C_in, H, W) of the current frame.
        """
        b, p = clean.shape[:2]
        x = torch.cat([clean, x_t.unsqueeze(1)], dim=1)
        times = torch.cat([t.new_zeros(b, p), t.unsqueeze(1)], dim=1)
        offsets = torch.arange(-p, 1, device=frame_index.device)
        return self.forward_clip(x, times, cond, frame_index.unsqueeze(1) + offsets)[:, -1]


def random_attention_model(preset: str | PoMDiTConfig, seed: int = 0) -> AttentionDiT:
    """The baseline for a preset with random weights, drawn like ``random_model`` draws PoM's."""
    cfg = preset if isinstance(preset, PoMDiTConfig) else get_preset(preset)
    return randomize(AttentionDiT(cfg), seed)
