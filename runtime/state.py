"""Per-stream bookkeeping and the preallocated recurrent state buffers (docs/design.md §3).

``StreamSlot`` is the host-side description of what one batch row is generating; the
tensors of all rows live in one ``StateBuffers`` on the backend's device: two ping-pong
state buffers (the committed state is read from one and the commit writes the other), a
scratch buffer that receives the discarded ``state_out`` of denoising steps, and the
committed token count. Every update is an in-place device op: nothing goes to the host.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from pomexport.errors import StateError
from pomexport.models.config import PoMDiTConfig


@dataclass(frozen=True)
class StreamSlot:
    """One stream in one batch slot: which clip it is and the next frame it will produce.

    The noise of frame ``f`` is drawn from ``SeedSequence([seed, stream, f])``, so a stream's
    clip depends on (seed, stream, label) only, never on its slot or its batch neighbours.
    """

    stream: int
    seed: int
    label: int
    frame: int = 0

    def advanced(self) -> StreamSlot:
        """The same stream one frame later."""
        return dataclasses.replace(self, frame=self.frame + 1)


class StateBuffers:
    """Ping-pong state (2 x [L, B, C] fp32), scratch [L, B, C] fp32 and count [B] fp32.

    ``read`` is the committed state; a commit step writes :attr:`write`, then :meth:`swap`
    makes it the committed one. Denoising steps write :attr:`scratch` and never touch the
    committed state.
    """

    def __init__(self, config: PoMDiTConfig, batch: int, device: torch.device) -> None:
        shape = (config.depth, batch, config.state_width)
        self._buffers = [torch.zeros(shape, device=device) for _ in range(2)]
        self.scratch = torch.zeros(shape, device=device)
        self.count = torch.zeros(batch, device=device)
        self._front = 0

    @property
    def batch(self) -> int:
        return self.count.shape[0]

    @property
    def read(self) -> torch.Tensor:
        """The committed state (L, B, C)."""
        return self._buffers[self._front]

    @property
    def write(self) -> torch.Tensor:
        """The buffer the next commit writes (L, B, C)."""
        return self._buffers[1 - self._front]

    def swap(self) -> None:
        """Make the buffer just written by a commit the committed state."""
        self._front = 1 - self._front

    def commit(self, active: torch.Tensor, tokens_per_frame: int) -> None:
        """After a commit step wrote :attr:`write`: keep it only for ``active`` rows (inactive
        rows stay empty), advance their count, and swap.

        active: (B,) fp32 of 0/1 on the device.
        """
        self.write.mul_(active.view(1, -1, 1))
        self.count.add_(active, alpha=float(tokens_per_frame))
        self.swap()

    def reset(self, rows: list[int]) -> None:
        """Empty the state and count of the given rows, leaving the others untouched."""
        for row in rows:
            if not 0 <= row < self.batch:
                raise StateError(f"state row {row} out of range [0, {self.batch})")
            for buffer in self._buffers:
                buffer[:, row].zero_()
            self.count[row] = 0.0
