"""``VideoGenerator``: frame-by-frame generation over any backend (docs/design.md §3).

For every frame, every active slot denoises its own noise from t = 1 to t = 0 while reading
its committed state (denoising steps write the scratch buffer), then one more step at t = 0
commits the clean frame into the other ping-pong buffer and the count grows by
``tokens_per_frame``. Slots are independent streams: each has its own label, seed, frame
position, state and count, can be reset alone, and a new stream can join a free slot between
two frames while the others keep going. With classifier-free guidance (``cfg_scale != 1``)
the batch holds every slot twice — conditional rows ``[0, S)`` and unconditional rows
``[S, 2S)`` with the null label — because the two read different states.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pomexport.errors import ConfigError, StateError
from pomexport.runtime.backend import Backend
from pomexport.runtime.sampler import check_sampler, guided_velocity, sample, time_schedule
from pomexport.runtime.state import StateBuffers, StreamSlot

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One finished frame of one stream: ``latent`` (C_in, H, W) fp32 on the backend device."""

    slot: int
    stream: int
    index: int
    latent: torch.Tensor


class _NoBar:
    """A progress bar that shows nothing (for :meth:`VideoGenerator.advance`)."""

    def update(self, n: int = 1) -> None:
        pass


class _Cancelled(Exception):
    """Raised inside a frame when :meth:`VideoGenerator.cancel` was called."""


def frame_noise(seed: int, stream: int, frame: int, shape: Sequence[int]) -> np.ndarray:
    """The initial noise of one frame: fp32 standard normal from ``SeedSequence([seed,
    stream, frame])``, drawn on the CPU so every backend and device starts from the same x."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, stream, frame]))
    return rng.standard_normal(tuple(shape), dtype=np.float32)


class VideoGenerator:
    """Generates ``slots`` independent video streams in one batch, frame by frame.

    >>> gen = VideoGenerator(TorchBackend(model), slots=2, steps=20, cfg_scale=2.0)
    >>> gen.start(0, label=3, seed=7)
    >>> for frame in gen.stream(frames=16): ...

    Not thread-safe, except :meth:`cancel`, which may be called from any thread.
    """

    def __init__(
        self,
        backend: Backend,
        slots: int = 1,
        steps: int = 20,
        cfg_scale: float = 1.0,
        sampler: str = "euler",
        shift: float = 1.0,
        progress: bool = False,
    ) -> None:
        cfg = backend.config
        if cfg.text_dim:
            raise ConfigError("VideoGenerator drives class-conditional models only")
        if slots < 1:
            raise ConfigError(f"slots must be >= 1, got {slots}")
        self.backend, self.config = backend, cfg
        self.steps, self.cfg_scale = steps, float(cfg_scale)
        self.sampler, self.progress = check_sampler(sampler), progress
        self.times = time_schedule(steps, shift)
        self.guided = self.cfg_scale != 1.0
        rows = slots * (2 if self.guided else 1)
        self.io = backend.allocate(rows)
        self.state = StateBuffers(cfg, rows, backend.device)
        self._active = torch.zeros(rows, device=backend.device)
        self._slots: list[StreamSlot | None] = [None] * slots
        self._cancel = threading.Event()
        self._broken: str | None = None  # set by a device error: every later call refuses

    # -- slots ----------------------------------------------------------------------------
    @property
    def slots(self) -> tuple[StreamSlot | None, ...]:
        """What each slot is generating (``None``: free)."""
        return tuple(self._slots)

    def _rows(self, slot: int) -> list[int]:
        if not 0 <= slot < len(self._slots):
            raise StateError(f"slot {slot} out of range [0, {len(self._slots)})")
        return [slot, slot + len(self._slots)] if self.guided else [slot]

    def start(self, slot: int, label: int, seed: int = 0, stream: int | None = None) -> StreamSlot:
        """Begin a new stream (frame 0, empty state) in a free slot; others are untouched.

        ``stream`` (default: the slot index) and ``seed`` pick the noise; ``label`` in
        ``[0, num_classes]`` (``num_classes`` = unconditional).
        """
        self._check_usable()
        rows = self._rows(slot)
        if self._slots[slot] is not None:
            raise StateError(f"slot {slot} is busy; reset it before starting a new stream")
        if not 0 <= label <= self.config.num_classes:
            n = self.config.num_classes
            raise ConfigError(f"label {label} out of range [0, {n}] ({n} = unconditional)")
        if seed < 0 or (stream is not None and stream < 0):
            raise ConfigError("seed and stream must be >= 0")
        item = StreamSlot(stream=slot if stream is None else stream, seed=seed, label=label)
        self.state.reset(rows)
        labels = [label, self.config.num_classes][: len(rows)]
        for row, row_label in zip(rows, labels, strict=True):
            self.io.label[row] = row_label
            self.io.frame_index[row] = 0
            self._active[row] = 1.0
        self._slots[slot] = item
        return item

    def reset(self, slot: int) -> None:
        """Stop the stream of ``slot`` and empty its state; the other slots are untouched."""
        rows = self._rows(slot)
        self.state.reset(rows)
        for row in rows:
            self._active[row] = 0.0
            self.io.frame_index[row] = 0
        self._slots[slot] = None

    def cancel(self) -> None:
        """Stop :meth:`stream` at the next step; the unfinished frame is discarded (nothing of
        it was committed), so the generator stays usable and resumes at that frame."""
        self._cancel.set()

    # -- generation -----------------------------------------------------------------------
    def _evaluations_per_frame(self) -> int:
        return self.steps * (2 if self.sampler == "heun" else 1) + 1

    def stream(self, frames: int) -> Iterator[Frame]:
        """Produce ``frames`` more frames for every active slot, yielding each as it finishes.

        Between two yields, slots may be started or reset. Ends early after :meth:`cancel`.
        """
        if frames < 1:
            raise ConfigError(f"frames must be >= 1, got {frames}")
        self._check_usable()
        from tqdm.auto import tqdm

        self._cancel.clear()
        total = frames * self._evaluations_per_frame()
        with tqdm(total=total, disable=not self.progress, unit="step", leave=False) as bar:
            for _ in range(frames):
                try:
                    done = self._frame(bar)
                except _Cancelled:
                    logger.info("generation cancelled; the unfinished frame was discarded")
                    return
                except (RuntimeError, StateError) as e:
                    self._refuse_after_device_error(e)
                    raise
                yield from done

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise StateError(self._broken)

    def _refuse_after_device_error(self, error: Exception) -> None:
        """A CUDA error is sticky (the context is lost, buffers hold garbage): raise a clear
        StateError and refuse all later work rather than return frames computed after it."""
        if self.backend.device.type != "cuda":
            return
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        self._broken = (
            f"CUDA error during generation ({first}); the CUDA context is unusable, so this "
            "generator refuses further work: restart the process"
        )
        raise StateError(self._broken) from error

    def _frame(self, bar) -> list[Frame]:
        """Denoise and commit one frame of every active slot."""
        busy = [i for i, s in enumerate(self._slots) if s is not None]
        if not busy:
            raise StateError("no active stream: start() a slot first")
        x = self._noise()

        def velocity(x_t: torch.Tensor, t: float) -> torch.Tensor:
            self._check_cancelled()
            v = self._evaluate(x_t, t, self.state.scratch)
            bar.update(1)
            return v

        x = sample(velocity, x, self.times, self.sampler)
        self._check_cancelled()
        self._commit(x)
        bar.update(1)
        frames = []
        for i in busy:
            item = self._slots[i]
            frames.append(Frame(i, item.stream, item.frame, x[i].clone()))
            self._slots[i] = item.advanced()
        return frames

    def advance(self, slots: Sequence[int]) -> list[Frame]:
        """Denoise and commit one frame of the given active ``slots`` only: the other active
        slots keep their state, count and frame position (a server whose streams' requests
        arrive at different times runs each arrival group as one batched step)."""
        chosen = {s for s in slots if self._rows(s)}  # _rows checks the range
        if not chosen or any(self._slots[s] is None for s in chosen):
            raise StateError(f"advance() needs active slots, got {sorted(chosen)}")
        parked = [s for s, item in enumerate(self._slots) if item is not None and s not in chosen]
        saved = {s: self._slots[s] for s in parked}
        rows = [r for s in parked for r in self._rows(s)]
        for s in parked:
            self._slots[s] = None
        self._active[rows] = 0.0
        try:
            frames = self._frame(_NoBar())
            # The commit zeroed the parked rows of the new front buffer; the old front (now
            # ``write``) still holds their committed state.
            self.state.read[:, rows] = self.state.write[:, rows]
            return frames
        finally:
            self._active[rows] = 1.0
            for s, item in saved.items():
                self._slots[s] = item

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            self._cancel.clear()
            raise _Cancelled

    def _noise(self) -> torch.Tensor:
        """(S, C_in, H, W) fp32 initial noise of every slot's current frame (free: zeros)."""
        cfg = self.config
        shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
        noise = np.zeros((len(self._slots), *shape), dtype=np.float32)
        for i, item in enumerate(self._slots):
            if item is not None:
                noise[i] = frame_noise(item.seed, item.stream, item.frame, shape)
        return torch.from_numpy(noise).to(self.backend.device)

    def _evaluate(self, x: torch.Tensor, t: float, state_out: torch.Tensor) -> torch.Tensor:
        """One backend step on x (S, ...) at time t; returns the (guided) fp32 velocity."""
        n = len(self._slots)
        self.io.x_t[:n].copy_(x)
        if self.guided:
            self.io.x_t[n:].copy_(x)
        self.io.t.fill_(t)
        self.backend.step(self.io, self.state.read, self.state.count, state_out)
        v = self.io.v.float()
        if self.guided:
            return guided_velocity(v[:n], v[n:], self.cfg_scale)
        return v.clone() if v is self.io.v else v

    def _commit(self, x: torch.Tensor) -> None:
        """Feed the clean frames at t = 0 and make their sums the committed state."""
        if not self.config.video:
            return  # image models: every frame is an independent image, no state
        self._evaluate(x, 0.0, self.state.write)
        self.state.commit(self._active, self.config.tokens_per_frame)
        self.io.frame_index.add_(self._active.to(torch.int64))

    def run(self, labels: Sequence[int], frames: int, seed: int = 0) -> torch.Tensor:
        """Generate ``frames`` frames for streams ``i`` = 0.. with ``labels[i]`` (one per slot),
        from frame 0. Returns (B, F, C_in, H, W) fp32 on the CPU."""
        if len(labels) != len(self._slots):
            raise ConfigError(f"{len(labels)} labels for {len(self._slots)} slots")
        for slot in range(len(self._slots)):
            if self._slots[slot] is not None:
                self.reset(slot)
            self.start(slot, int(labels[slot]), seed=seed, stream=slot)
        clip = torch.empty(len(labels), frames, *self.io.x_t.shape[1:])
        produced = 0
        for frame in self.stream(frames):
            clip[frame.slot, frame.index] = frame.latent.cpu()
            produced += 1
        if produced != len(labels) * frames:
            raise StateError("generation was cancelled before the clip was complete")
        return clip
