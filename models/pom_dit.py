"""PoM-DiT: image and video diffusion transformers with Polynomial Mixers.

One class serves both (``cfg.video``). Three ways to run it, all on the same weights:

- ``step``: one denoising step of one frame with the state as explicit I/O — the exported
  graph (docs/design.md §3): ``x_t, t, cond, frame_index, state, count -> v, state_out``.
- ``forward_clip``: every frame of a clip in parallel, block-causal (frame f sees the tokens
  of frames 0..f of the same clip).
- ``forward_teacher_forced``: noisy frames reading the state of the *clean* previous frames,
  in parallel — exactly what frame-by-frame generation computes; used for training.
"""

from __future__ import annotations

import torch
from torch import nn

from pomexport.models.config import PoMDiTConfig
from pomexport.models.dit import FinalLayer, PoMDiTBlock
from pomexport.models.embeddings import FrameEmbedder, PatchEmbed, TimestepEmbedder
from pomexport.models.mixer import discounted_read, exclusive_prefix

Prefixes = list[tuple[torch.Tensor, torch.Tensor]]


class PoMDiT(nn.Module):
    """Class- (or text-) conditional PoM-DiT over latents (B, C_in, H, W)."""

    def __init__(self, cfg: PoMDiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        self.patch = PatchEmbed(cfg)
        self.time = TimestepEmbedder(d)
        self.frame = FrameEmbedder(d) if cfg.video else None
        # Index num_classes is the null label used for classifier-free guidance.
        self.label = nn.Embedding(cfg.num_classes + 1, d) if not cfg.text_dim else None
        self.text = nn.Linear(cfg.text_dim, d) if cfg.text_dim else None
        self.blocks = nn.ModuleList(PoMDiTBlock(cfg) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg)

    # -- shapes ---------------------------------------------------------------------------
    @property
    def null_label(self) -> int:
        return self.cfg.num_classes

    def zero_state(self, batch: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Empty state (L, B, C) and count (B,), both fp32."""
        state = torch.zeros(self.cfg.depth, batch, self.cfg.state_width, device=device)
        return state, torch.zeros(batch, device=device)

    def _embed(self, x, t, cond, frame_index):
        """x (B, F, C_in, H, W), t (B, F), frame_index (B, F) -> tokens, c, text."""
        b, f = x.shape[:2]
        tokens = self.patch(x.flatten(0, 1)).unflatten(0, (b, f))
        if self.frame is not None:
            if self.cfg.max_frame_index is not None:
                # Bounded: an endless stream never reads an index training did not cover.
                # Clamped as fp32 (exact to 2**24, and the embedding's sinusoid casts to fp32
                # anyway): TensorRT's Clip takes float inputs only, an int64 one is refused.
                frame_index = frame_index.float().clamp(max=float(self.cfg.max_frame_index))
            tokens = tokens + self.frame(frame_index).unsqueeze(-2)
        c = self.time(t)
        text = None
        if self.label is not None:
            c = c + self.label(cond).unsqueeze(1)
        else:
            text = self.text(cond)
        return tokens, c, text

    def _unpatchify(self, out: torch.Tensor) -> torch.Tensor:
        """(B, F, N, p*p*C) -> (B, F, C, H, W)."""
        cfg = self.cfg
        b, f = out.shape[:2]
        p, g, c = cfg.patch_size, cfg.grid, cfg.in_channels
        out = out.reshape(b, f, g, g, p, p, c).permute(0, 1, 6, 2, 4, 3, 5)
        return out.reshape(b, f, c, g * p, g * p)

    def _run(self, x, t, cond, frame_index, mixes) -> torch.Tensor:
        tokens, c, text = self._embed(x, t, cond, frame_index)
        for block, mix in zip(self.blocks, mixes, strict=True):
            tokens = block(tokens, c, mix, text)
        return self._unpatchify(self.final(tokens, c))

    # -- the three forms ------------------------------------------------------------------
    def step(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
        state: torch.Tensor,
        count: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One denoising step of one frame (the exported graph).

        x_t (B, C_in, H, W); t (B,) fp32; cond: label (B,) int64 or text (B, L, D_txt);
        frame_index (B,) int64; state (L, B, C) fp32; count (B,) fp32
        -> v (B, C_in, H, W), state_out (L, B, C) fp32.
        """
        outs: list[torch.Tensor] = []
        state, count = discounted_read(state, count, self.cfg.decay, self.cfg.tokens_per_frame)

        def mixer_step(layer: int):
            def mix(u: torch.Tensor) -> torch.Tensor:
                # squeeze, not u[:, 0]: a view in every runtime, where a Gather copies
                y, s = self.blocks[layer].mixer(u.squeeze(1), state[layer], count)
                outs.append(s)
                return y.unsqueeze(1)

            return mix

        mixes = [mixer_step(i) for i in range(self.cfg.depth)]
        v = self._run(x_t.unsqueeze(1), t.unsqueeze(1), cond, frame_index.unsqueeze(1), mixes)
        return v[:, 0], torch.stack(outs)

    def forward_clip(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
        state: torch.Tensor | None = None,
        count: torch.Tensor | None = None,
        prefixes: Prefixes | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every frame of a clip in parallel.

        x (B, F, C_in, H, W); t (B, F); frame_index (B, F); state/count: committed before
        frame 0 (default empty). Without ``prefixes`` frame f mixes frames 0..f of ``x``
        (block-causal) and the per-layer frame sums (L, B, F, C) are returned; with
        ``prefixes`` (per layer: prefix (B, F, C), prefix_count (B, F)) frame f reads the
        given prefix plus its own tokens, and no sums are returned.
        """
        if state is None:
            state, count = self.zero_state(x.shape[0], x.device)
        n = self.cfg.tokens_per_frame
        sums: list[torch.Tensor] = []

        def mixer_clip(layer: int):
            mixer = self.blocks[layer].mixer

            def mix(u: torch.Tensor) -> torch.Tensor:
                if prefixes is not None:
                    return mixer.forward_frames(u, *prefixes[layer])
                s = mixer.frame_sums(u)
                sums.append(s)
                prefix = exclusive_prefix(s, state[layer], count, n, self.cfg.decay)
                return mixer.forward_frames(u, *prefix)

            return mix

        v = self._run(x, t, cond, frame_index, [mixer_clip(i) for i in range(self.cfg.depth)])
        return v, (torch.stack(sums) if sums else None)

    def clean_prefixes(
        self,
        clean: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
        state: torch.Tensor | None = None,
        count: torch.Tensor | None = None,
    ) -> Prefixes:
        """Per-layer state before each frame when frames 0..f-1 are committed clean (t=0)."""
        if state is None:
            state, count = self.zero_state(clean.shape[0], clean.device)
        t0 = clean.new_zeros(clean.shape[:2])
        _, sums = self.forward_clip(clean, t0, cond, frame_index, state, count)
        n = self.cfg.tokens_per_frame
        d = self.cfg.decay
        return [exclusive_prefix(sums[i], state[i], count, n, d) for i in range(self.cfg.depth)]

    def forward_teacher_forced(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        clean: torch.Tensor,
        cond: torch.Tensor,
        frame_index: torch.Tensor,
    ) -> torch.Tensor:
        """Noisy frames (per-frame t) reading the state of the clean frames before them.

        Equals running ``step`` on frame f after committing clean frames 0..f-1.
        """
        prefixes = self.clean_prefixes(clean, cond, frame_index)
        v, _ = self.forward_clip(x_t, t, cond, frame_index, prefixes=prefixes)
        return v
