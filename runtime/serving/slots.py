"""Which generator slot holds which Triton sequence (correlation ID), and when it goes idle.

Triton's sequence batcher keeps its own batch slots and releases a sequence after
``max_sequence_idle_microseconds``; the backend is not told. So the model keeps this table
beside its :class:`~pomexport.runtime.generator.VideoGenerator`: a START takes a free slot
(reaping idle sequences first), END frees it, and any sequence not seen for ``idle_timeout_s``
is reaped, so its slot can serve a new stream.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pomexport.errors import StateError

logger = logging.getLogger(__name__)


class SlotTable:
    """Correlation ID -> slot index for ``slots`` slots, with idle reaping.

    ``clock`` returns seconds (monotonic); injectable so tests need not sleep.
    """

    def __init__(
        self, slots: int, idle_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._free = list(range(slots))
        self._owner: dict[int, int] = {}  # corrid -> slot
        self._seen: dict[int, float] = {}  # corrid -> last request time

    def __contains__(self, corrid: int) -> bool:
        return corrid in self._owner

    def slot(self, corrid: int) -> int:
        """The slot of a live sequence; :class:`StateError` for one never started or reaped."""
        if corrid not in self._owner:
            raise StateError(
                f"sequence {corrid} is unknown: its first request must set START "
                "(or it ended, or was reaped after its idle timeout)"
            )
        self._seen[corrid] = self._clock()
        return self._owner[corrid]

    def start(self, corrid: int) -> tuple[int, bool]:
        """A slot for a new sequence: its old one when it restarts (``True``: the caller must
        reset it), else a free one. :class:`StateError` when every slot is busy."""
        self._seen[corrid] = self._clock()
        if corrid in self._owner:
            return self._owner[corrid], True
        if not self._free:
            raise StateError(f"all {len(self._owner)} stream slots are busy")
        slot = self._free.pop(0)
        self._owner[corrid] = slot
        return slot, False

    def end(self, corrid: int) -> int | None:
        """Free the slot of ``corrid``; returns it (``None`` if it held none)."""
        self._seen.pop(corrid, None)
        slot = self._owner.pop(corrid, None)
        if slot is not None:
            self._free.append(slot)
        return slot

    def reap(self) -> list[int]:
        """End every sequence idle for longer than the timeout; returns the freed slots."""
        now = self._clock()
        idle = [c for c, seen in self._seen.items() if now - seen > self.idle_timeout_s]
        freed = [self.end(c) for c in idle]
        for corrid in idle:
            logger.info("sequence %d reaped after %.1f s idle", corrid, self.idle_timeout_s)
        return [s for s in freed if s is not None]
