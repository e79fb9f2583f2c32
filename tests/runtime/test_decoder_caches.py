"""The decoder's per-stream cache bookkeeping (runtime/decoder_caches.py), shared by the ONNX
Runtime and TensorRT decoders: which graph runs and on which of the two cache sets."""

from __future__ import annotations

import pytest
import torch

from pomexport.errors import StateError
from pomexport.export.artifact.decoder import DecoderSpec
from pomexport.runtime.decoder_caches import StreamCaches, first_role


def _spec(kind: str) -> DecoderSpec:
    cache = {"name": "cache_in", "shape": [1, 2], "dtype": "float32"}
    graphs = {"next": {"inputs": [{"name": "latent"}, cache], "outputs": []}}
    pairs = {"pairs": [["cache_in", "cache_out"]]} if kind == "wan-stream" else {}
    return DecoderSpec("X", kind, "fp32", {}, {}, {"graphs": graphs, "state": pairs})


def _caches(kind: str) -> StreamCaches:
    return StreamCaches(_spec(kind), lambda entry: torch.zeros(entry["shape"]))


def test_a_wan_stream_writes_set_0_first_then_alternates():
    caches = _caches("wan-stream")
    caches.start(3)
    calls = []
    for _ in range(4):
        call = caches.call(3)
        calls.append(call)
        caches.advance(3, call)
    assert [c.role for c in calls] == ["first", "next", "next", "next"]
    sets = [c.write[0] for c in calls]
    assert calls[0].read == [] and sets[0] is not sets[1] and sets[0] is sets[2]
    for before, after in zip(calls, calls[1:], strict=False):
        assert after.read[0] is before.write[0]  # each call reads what the last one wrote


def test_restarting_reuses_the_buffers_from_set_0_and_streams_are_apart():
    caches = _caches("wan-stream")
    caches.start(0)
    caches.start(1)
    first = caches.call(0)
    caches.advance(0, first)
    assert caches.call(1).role == "first"  # stream 1 untouched by stream 0
    caches.advance(0, caches.call(0))
    caches.start(0)
    again = caches.call(0)
    assert again.role == "first" and again.write[0] is first.write[0]


def test_an_image_decoder_has_no_cache_and_a_stream_must_start():
    caches = _caches("image")
    with pytest.raises(StateError, match="stream 5 was not started"):
        caches.call(5)
    caches.start(5)
    call = caches.call(5)
    assert (call.role, call.read, call.write) == ("decode", [], [])
    caches.advance(5, call)
    assert caches.call(5).role == "decode"
    assert first_role(_spec("image")) == "decode" and first_role(_spec("wan-stream")) == "first"
