"""Calibration data: the step-graph inputs the real sampler feeds, recorded while it runs.

A :class:`RecordingBackend` wraps any runtime backend and copies the inputs of every step
(``x_t, t, label, frame_index, state, count``, one row per stream) before delegating. The
:class:`~pomexport.runtime.generator.VideoGenerator` drives it over labels x seeds x frames x
timesteps, so the set holds what deployment computes: noisy and clean (commit) frames, empty
and filled states, conditional and (with CFG) unconditional rows. A reservoir keeps a uniform
sample of at most ``samples`` rows whatever the run length.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.models.config import PoMDiTConfig
from pomexport.runtime.backend import Backend, StepBuffers

log = logging.getLogger(__name__)

FEEDS = ("x_t", "t", "label", "frame_index", "state", "count")
_STATE = "state"  # the one input whose batch axis is 1: (L, B, C)


def batch_axis(name: str) -> int:
    """Axis of the stream (batch) dimension of a step input."""
    return 1 if name == _STATE else 0


@dataclass(frozen=True)
class CaptureSettings:
    """What to sample: every label x seed runs ``frames`` frames of ``steps`` denoising steps.

    ``labels=None`` spreads up to 8 labels evenly over the classes (the null label included
    when ``cfg_scale`` is 1, so the unconditional branch is calibrated too).
    """

    labels: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0, 1)
    frames: int = 4
    steps: int = 8
    cfg_scale: float = 1.0
    samples: int = 256
    seed: int = 0  # the reservoir's random stream

    def __post_init__(self) -> None:
        if self.samples < 1 or self.frames < 1 or self.steps < 1 or not self.seeds:
            raise ConfigError("samples, frames and steps must be >= 1, and seeds non-empty")

    def resolve_labels(self, cfg: PoMDiTConfig) -> list[int]:
        if self.labels is not None:
            bad = [x for x in self.labels if not 0 <= x <= cfg.num_classes]
            if bad:
                raise ConfigError(f"labels {bad} out of range [0, {cfg.num_classes}]")
            return list(self.labels)
        count = min(cfg.num_classes, 7)
        labels = np.linspace(0, cfg.num_classes - 1, count).round().astype(int).tolist()
        return labels + ([cfg.num_classes] if self.cfg_scale == 1.0 else [])


class Reservoir:
    """Uniform sample of at most ``capacity`` rows from a stream (Vitter's algorithm R)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.capacity = capacity
        self.rows: list[dict[str, np.ndarray]] = []
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def offer(self, row: dict[str, np.ndarray]) -> None:
        self.seen += 1
        if len(self.rows) < self.capacity:
            self.rows.append(row)
            return
        slot = int(self._rng.integers(0, self.seen))
        if slot < self.capacity:
            self.rows[slot] = row


class RecordingBackend:
    """A :class:`~pomexport.runtime.backend.Backend` that records every step's inputs."""

    def __init__(self, inner: Backend, reservoir: Reservoir) -> None:
        self.inner, self.reservoir = inner, reservoir

    config = property(lambda self: self.inner.config)
    device = property(lambda self: self.inner.device)
    dtype = property(lambda self: self.inner.dtype)
    name = property(lambda self: f"recording[{self.inner.name}]")

    def allocate(self, batch: int) -> StepBuffers:
        return self.inner.allocate(batch)

    def step(self, io: StepBuffers, state, count, state_out) -> None:
        values = io.tensors(state, count)
        arrays = {
            k: v.detach().float().cpu().numpy()
            if v.is_floating_point()
            else v.detach().cpu().numpy()
            for k, v in values.items()
        }
        for row in range(io.batch):
            self.reservoir.offer(
                {k: np.take(a, row, axis=batch_axis(k)).copy() for k, a in arrays.items()}
            )
        self.inner.step(io, state, count, state_out)


@dataclass(frozen=True)
class CalibrationSet:
    """Step inputs stacked along their stream axis (``state`` is (L, N, C), others (N, ...))."""

    feeds: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.feeds["t"].shape[0])

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, np.ndarray]]) -> CalibrationSet:
        if not rows:
            raise ConfigError("empty calibration set")
        return cls({k: np.stack([r[k] for r in rows], axis=batch_axis(k)) for k in FEEDS})

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of at most ``size`` rows each, in order (contract names and dtypes)."""
        for start in range(0, len(self), size):
            index = slice(start, start + size)
            yield {
                k: np.ascontiguousarray(v[:, index] if batch_axis(k) else v[index])
                for k, v in self.feeds.items()
            }

    def save(self, path: str | os.PathLike) -> Path:
        """Write an ``.npz`` atomically."""
        buffer = BytesIO()
        np.savez(buffer, **self.feeds)
        path = Path(path)
        atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CalibrationSet:
        try:
            with np.load(path, allow_pickle=False) as data:
                feeds = {k: data[k] for k in FEEDS}
        except (OSError, KeyError, ValueError) as e:
            raise ArtifactError(f"{path}: not a calibration set ({e})") from e
        return cls(feeds)


def capture(backend: Backend, settings: CaptureSettings) -> CalibrationSet:
    """Run the real sampler over ``backend`` and keep a uniform sample of its step inputs."""
    from pomexport.runtime.generator import VideoGenerator

    labels = settings.resolve_labels(backend.config)
    reservoir = Reservoir(settings.samples, settings.seed)
    recorder = RecordingBackend(backend, reservoir)
    generator = VideoGenerator(
        recorder, slots=len(labels), steps=settings.steps, cfg_scale=settings.cfg_scale
    )
    for seed in settings.seeds:
        generator.run(labels, settings.frames, seed=seed)
    log.info("captured %d of %d step rows", len(reservoir.rows), reservoir.seen)
    return CalibrationSet.from_rows(reservoir.rows)


def capture_model(model, settings: CaptureSettings) -> CalibrationSet:
    """:func:`capture` over the PyTorch model (``PoMDiT``) on the CPU."""
    from pomexport.runtime.torch_backend import TorchBackend

    with torch.inference_mode():
        return capture(TorchBackend(model, "cpu"), settings)
