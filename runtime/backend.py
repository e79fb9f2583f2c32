"""The one ``Backend`` protocol every runtime backend implements (torch, ONNX Runtime, TensorRT).

A backend evaluates the step graph of docs/design.md §3 once per call, reading and writing buffers
that the caller allocated through the backend itself (so they live on the backend's device,
in its dtype, and can be bound once — ONNX Runtime IO binding, TensorRT tensor addresses):

    x_t [B, C_in, H, W] (model dtype), t [B] fp32, label [B] int64, frame_index [B] int64,
    state [L, B, C] fp32, count [B] fp32  ->  v [B, C_in, H, W] (model dtype),
    state_out [L, B, C] fp32

The buffers are torch tensors: torch is the runtime's array type on every backend (ONNX
Runtime binds them by data pointer, TensorRT by address), so the generator never copies
between libraries inside its loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from pomexport.models.config import PoMDiTConfig


@dataclass(frozen=True)
class StepBuffers:
    """Preallocated I/O of one step graph evaluation for a batch of ``batch`` rows.

    ``state`` is not here: it lives in the ping-pong :class:`~pomexport.runtime.state.StateBuffers`
    the generator passes to every step (read one buffer, write another).
    """

    x_t: torch.Tensor  # (B, C_in, H, W), model dtype
    t: torch.Tensor  # (B,) fp32
    label: torch.Tensor  # (B,) int64
    frame_index: torch.Tensor  # (B,) int64
    v: torch.Tensor  # (B, C_in, H, W), model dtype — step output

    @property
    def batch(self) -> int:
        return self.x_t.shape[0]

    def tensors(
        self, state: torch.Tensor, count: torch.Tensor, state_out: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The step graph's inputs (and outputs, given ``state_out``) by their docs/design.md §3
        names, in contract order."""
        named = {
            "x_t": self.x_t,
            "t": self.t,
            "label": self.label,
            "frame_index": self.frame_index,
            "state": state,
            "count": count,
        }
        if state_out is not None:
            named |= {"v": self.v, "state_out": state_out}
        return named


@runtime_checkable
class Backend(Protocol):
    """What the :class:`~pomexport.runtime.generator.VideoGenerator` needs from a backend."""

    @property
    def config(self) -> PoMDiTConfig:
        """The model's architecture (state width, depth, tokens per frame, null label...)."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the buffers live and the step runs."""
        ...

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of ``x_t`` and ``v`` (state and count are always fp32)."""
        ...

    @property
    def name(self) -> str:
        """Short identifier for logs and reports (``torch``, ``ort-cpu``...)."""
        ...

    def allocate(self, batch: int) -> StepBuffers:
        """Zeroed step I/O buffers for ``batch`` rows on :attr:`device`."""
        ...

    def step(
        self,
        io: StepBuffers,
        state: torch.Tensor,
        count: torch.Tensor,
        state_out: torch.Tensor,
    ) -> None:
        """Run the step graph once: read ``io.x_t, io.t, io.label, io.frame_index``,
        ``state`` (L, B, C) and ``count`` (B,); write ``io.v`` and ``state_out`` in place.

        ``state_out`` must not alias ``state``.
        """
        ...


def allocate_like(config: PoMDiTConfig, batch: int, device, dtype: torch.dtype) -> StepBuffers:
    """Zeroed :class:`StepBuffers` of a model config: the allocation most backends share."""
    shape = (batch, config.in_channels, config.input_size, config.input_size)
    return StepBuffers(
        x_t=torch.zeros(shape, device=device, dtype=dtype),
        t=torch.zeros(batch, device=device, dtype=torch.float32),
        label=torch.zeros(batch, device=device, dtype=torch.int64),
        frame_index=torch.zeros(batch, device=device, dtype=torch.int64),
        v=torch.zeros(shape, device=device, dtype=dtype),
    )
