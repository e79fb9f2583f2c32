"""One-call generation: ``generate(model_or_backend, labels, frames)`` -> latents, or
``generate_frames(...)``, the same frames one at a time as they are made (any length)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from pomexport.models.pom_dit import PoMDiT
from pomexport.runtime.backend import Backend
from pomexport.runtime.generator import VideoGenerator
from pomexport.runtime.torch_backend import TorchBackend


def as_backend(model_or_backend: PoMDiT | Backend, device: str | None = None) -> Backend:
    """A backend as is; a torch model wrapped in a :class:`TorchBackend` on ``device``
    (default: where the model's weights are, so the model is not moved)."""
    if isinstance(model_or_backend, PoMDiT):
        if device is None:
            device = next(model_or_backend.parameters()).device
        return TorchBackend(model_or_backend, device=device)
    return model_or_backend


def _generator(model_or_backend, slots, steps, cfg_scale, sampler, shift, progress):
    return VideoGenerator(
        as_backend(model_or_backend),
        slots=slots,
        steps=steps,
        cfg_scale=cfg_scale,
        sampler=sampler,
        shift=shift,
        progress=progress,
    )


def generate(
    model_or_backend: PoMDiT | Backend,
    labels: Sequence[int],
    frames: int,
    steps: int = 20,
    cfg_scale: float = 2.0,
    seed: int = 0,
    sampler: str = "euler",
    shift: float = 1.0,
    progress: bool = False,
) -> torch.Tensor:
    """Generate one clip per label, all in one batch; stream ``i`` is seeded by (seed, i).

    A bare model runs on the torch backend, on the device its weights are on. Returns
    (B, F, C_in, H, W) fp32 latents on the CPU (for the tiny model: images in about [-1, 1]).
    """
    gen = _generator(model_or_backend, len(labels), steps, cfg_scale, sampler, shift, progress)
    return gen.run(labels, frames, seed=seed)


def generate_frames(
    model_or_backend: PoMDiT | Backend,
    labels: Sequence[int],
    frames: int,
    steps: int = 20,
    cfg_scale: float = 2.0,
    seed: int = 0,
    sampler: str = "euler",
    shift: float = 1.0,
    progress: bool = False,
) -> Iterator[torch.Tensor]:
    """:func:`generate`'s frames one at a time: yields (B, C_in, H, W) fp32 CPU latents,
    frame 0 first, as soon as every stream has committed it — nothing of the clip is held,
    so ``frames`` may be any number (memory stays flat)."""
    gen = _generator(model_or_backend, len(labels), steps, cfg_scale, sampler, shift, progress)
    for slot, label in enumerate(labels):
        gen.start(slot, int(label), seed=seed, stream=slot)
    done: dict[int, torch.Tensor] = {}
    for frame in gen.stream(frames):
        done[frame.slot] = frame.latent.cpu()
        if len(done) == len(labels):
            yield torch.stack([done[slot] for slot in range(len(labels))])
            done = {}
