"""State buffers: ping-pong commit, per-row reset, frozen per-stream slots."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pomexport.errors import StateError
from pomexport.models import get_preset
from pomexport.runtime.state import StateBuffers, StreamSlot

CFG = get_preset("tiny")


def test_commit_swaps_masks_free_rows_and_counts():
    buffers = StateBuffers(CFG, batch=3, device=torch.device("cpu"))
    first_read, first_write = buffers.read, buffers.write
    assert first_read.shape == (CFG.depth, 3, CFG.state_width)
    buffers.write.fill_(2.0)
    buffers.commit(torch.tensor([1.0, 0.0, 1.0]), CFG.tokens_per_frame)
    assert buffers.read is first_write and buffers.write is first_read
    assert buffers.read[:, [0, 2]].eq(2.0).all() and buffers.read[:, 1].eq(0.0).all()
    assert buffers.count.tolist() == [CFG.tokens_per_frame, 0.0, CFG.tokens_per_frame]


def test_reset_touches_only_its_rows():
    buffers = StateBuffers(CFG, batch=3, device=torch.device("cpu"))
    for b in (buffers.read, buffers.write):
        b.fill_(1.0)
    buffers.count.fill_(5.0)
    buffers.reset([1])
    for b in (buffers.read, buffers.write):
        assert b[:, 1].eq(0).all() and b[:, [0, 2]].eq(1).all()
    assert buffers.count.tolist() == [5.0, 0.0, 5.0]
    with pytest.raises(StateError):
        buffers.reset([3])


def test_stream_slot_is_frozen_and_advances():
    slot = StreamSlot(stream=4, seed=1, label=2)
    assert slot.advanced() == StreamSlot(stream=4, seed=1, label=2, frame=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        slot.frame = 3
