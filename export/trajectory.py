"""Real step inputs for range checks: the runtime loop of docs/design.md §3, run in PyTorch.

Per stream: frames from noise, a few Euler steps of the rectified flow from t=1 to t=0
(state read, state_out discarded), then the commit step at t=0 that enters the clean
frame into the state. Every ``step`` call's inputs are recorded, so the ranges seen are
those of actual sampling (noisy and clean frames, empty and filled states).
"""

from __future__ import annotations

import numpy as np
import torch

from pomexport.errors import ConfigError
from pomexport.models.pom_dit import PoMDiT


def _labels(model: PoMDiT, batch: int, gen: torch.Generator) -> torch.Tensor:
    """Class labels, the last stream unconditional (the CFG branch sees the null label)."""
    labels = torch.randint(0, model.cfg.num_classes, (batch,), generator=gen)
    labels[-1] = model.null_label
    return labels


@torch.no_grad()
def record_trajectory(
    model: PoMDiT, frames: int = 2, steps: int = 4, batch: int = 2, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """Step-graph feeds (contract names) of ``frames`` frames x (``steps`` + 1) calls."""
    cfg = model.cfg
    if cfg.text_dim:
        raise ConfigError("fp16 export of text-conditioned models is not supported yet")
    gen = torch.Generator().manual_seed(seed)
    labels = _labels(model, batch, gen)
    state, count = model.zero_state(batch)
    schedule = torch.linspace(1.0, 0.0, steps + 1)
    shape = (batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    feeds: list[dict[str, np.ndarray]] = []

    def step(x, t, frame):
        inputs = (x, torch.full((batch,), float(t)), labels, frame, state, count)
        names = ("x_t", "t", "label", "frame_index", "state", "count")
        feeds.append({n: v.numpy().copy() for n, v in zip(names, inputs, strict=True)})
        return model.step(*inputs)

    for f in range(frames):
        frame = torch.full((batch,), f, dtype=torch.int64)
        x = torch.randn(shape, generator=gen)
        for t, t_next in zip(schedule[:-1], schedule[1:], strict=True):
            v, _ = step(x, t, frame)
            x = x + (t_next - t) * v
        _, state = step(x.clamp(-1.0, 1.0), 0.0, frame)
        count = count + cfg.tokens_per_frame
    return feeds
