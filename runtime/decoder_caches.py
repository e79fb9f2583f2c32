"""Which decoder graph a stream's next latent frame runs, and on which cache buffers.

Both artifact decoders (``runtime/ort_decoder.py`` on ONNX Runtime, ``runtime/trt_decoder.py``
on TensorRT) keep a stream's causal state the way the runtime keeps the mixer state
(docs/design.md §3, §6.2): a ``wan-stream`` stream owns two cache sets of the contract's
fixed shapes, made once; ``first`` writes set 0, ``next`` reads the front set and writes the
other, then they swap. An ``image`` decoder has no cache: every frame runs ``decode``. The
bookkeeping lives here once; each decoder only binds the buffers it is given and runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pomexport.errors import StateError
from pomexport.export.artifact.decoder import DecoderSpec

__all__ = ["DecoderCall", "StreamCaches", "StreamDecoder", "first_role"]


def first_role(spec: DecoderSpec) -> str:
    """The role whose latent input and first output give the latent and RGB shapes."""
    return "first" if spec.streaming else "decode"


@dataclass(frozen=True)
class DecoderCall:
    """One decoder call: the graph ``role`` reading the caches ``read``, writing ``write``."""

    role: str
    read: list[torch.Tensor]
    write: list[torch.Tensor]


class _Stream:
    def __init__(self, caches: list[list[torch.Tensor]]) -> None:
        self.caches, self.front, self.first = caches, 0, True


class StreamCaches:
    """Every stream's cache sets for ``spec``; ``buffer(entry)`` makes one tensor of a
    manifest ``io`` entry (name, shape, dtype) on the decoder's device."""

    def __init__(self, spec: DecoderSpec, buffer: Callable[[dict], torch.Tensor]) -> None:
        self.spec, self._buffer = spec, buffer
        self._streams: dict[int, _Stream] = {}

    def start(self, stream: int) -> None:
        """Begin ``stream``: its next frame is its first (its buffers are reused)."""
        if stream not in self._streams:
            pairs = self.spec.state_pairs
            graph = self.spec.graph("next")["inputs"] if pairs else []
            by_name = {entry["name"]: entry for entry in graph}
            sets = [[self._buffer(by_name[name]) for name, _ in pairs] for _ in range(2)]
            self._streams[stream] = _Stream(sets)
        self._streams[stream].first, self._streams[stream].front = True, 0

    def cache_sets(self, stream: int) -> list[list[torch.Tensor]]:
        """``stream``'s two cache sets (empty lists for an ``image`` decoder)."""
        return self._streams[stream].caches

    def call(self, stream: int) -> DecoderCall:
        """What ``stream``'s next frame runs; :meth:`advance` once it has run."""
        state = self._streams.get(stream)
        if state is None:
            raise StateError(f"decoder: stream {stream} was not started")
        if not self.spec.streaming:
            return DecoderCall("decode", [], [])
        if state.first:
            return DecoderCall("first", [], state.caches[0])
        return DecoderCall("next", state.caches[state.front], state.caches[1 - state.front])

    def advance(self, stream: int, call: DecoderCall) -> None:
        """``call`` ran: what it wrote is ``stream``'s front set now."""
        state = self._streams[stream]
        if call.role != "decode":
            state.front = 0 if call.role == "first" else 1 - state.front
        state.first = False


class StreamDecoder:
    """What both artifact decoders share of the ``LatentDecoder`` protocol: RGB frame counts
    from the entry, streams started on their :class:`StreamCaches` (``self._streams``)."""

    spec: DecoderSpec
    _streams: StreamCaches

    def rgb_frames(self, latent_frames: int) -> int:
        return self.spec.rgb_frames(latent_frames)

    def start(self, stream: int) -> None:
        """Begin ``stream`` (its cache buffers are made the first time, then reused)."""
        self._streams.start(stream)
