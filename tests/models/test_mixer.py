"""models/mixer.py: the stationary read of the state (issue 18, docs/design.md).

``discounted_read`` and ``exclusive_prefix`` against a hand loop of the issue's recursion
(``state_out = d*state + sum P``, ``count_out = d*count + N``, the op reading ``d*state`` and
``d*count``), and ``decay = 1`` being today's path bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pomexport.models.mixer import discounted_read, exclusive_prefix

N = 64  # tokens per frame
# fp32 against a float64 hand loop: the closed form keeps ~3e-7 relative for every decay
# (measured up to 3000 frames, decay 0.6 .. 0.99999); the old 1 - pow(d, f) form was 2e-4
# off at 0.9999 and fails this bound.
REL = 2e-6


def _sums(batch: int = 2, frames: int = 7, channels: int = 5) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    sums = torch.rand(batch, frames, channels, generator=gen) * N  # a frame's sum of P
    state = torch.rand(batch, channels, generator=gen) * 3 * N
    return sums, state


def _hand_prefix(sums, state, committed: int, decay: float):
    """float64 recursion from an empty stream: ``committed`` frames already in ``state`` (its
    discounted count), then the prefix before each frame of ``sums``."""
    c = torch.zeros(sums.shape[0], dtype=torch.float64)
    for _ in range(committed):
        c = decay * c + N
    s = state.double()
    prefix, prefix_count = [], []
    for f in range(sums.shape[1]):
        prefix.append(decay * s)
        prefix_count.append(decay * c)
        s = decay * s + sums[:, f].double()
        c = decay * c + N
    return torch.stack(prefix, 1), torch.stack(prefix_count, 1)


def _rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.double() - expected).abs() / expected.abs().clamp(min=1e-12)).max().item()


@pytest.mark.parametrize("decay", [0.6, 0.9, 0.9999, 0.99999])
def test_discounted_prefix_is_the_hand_recursion(decay):
    sums, state = _sums()
    committed = 3
    count = torch.full((2,), float(committed * N))
    prefix, prefix_count = exclusive_prefix(sums, state, count, N, decay)
    hand, hand_count = _hand_prefix(sums, state, committed, decay)
    assert _rel(prefix_count, hand_count) <= REL
    assert _rel(prefix, hand) <= REL


@pytest.mark.parametrize("decay", [0.6, 0.9999])
def test_discounted_read_is_the_closed_form_of_the_recursion_at_every_frame(decay):
    """What ``step`` reads at frame f (count = f N committed tokens) is ``d * c_d(f)`` with
    c_d the recursion ``c <- d c + N`` from 0, up to 3000 frames. ``d`` is the decay in fp32,
    the factor the graph scales the state by (over 3000 frames the rounding of 0.9999 to fp32
    alone moves c_d by 2e-5)."""
    frames = 3000
    count = torch.arange(frames, dtype=torch.float32) * N
    state = torch.ones(frames, 1)
    read, read_count = discounted_read(state, count, decay, N)
    d = float(np.float32(decay))
    c, hand = 0.0, []
    for _ in range(frames):
        hand.append(d * c)
        c = d * c + N
    hand = torch.tensor(hand, dtype=torch.float64)
    assert read_count[0].item() == 0.0
    assert _rel(read_count[1:], hand[1:]) <= REL
    assert torch.equal(read, torch.full((frames, 1), d))


def test_an_endless_stream_saturates_instead_of_overflowing():
    """Past fp32's exact integers (count 2**30 tokens) the read count is d N / (1 - d)."""
    decay = 0.9
    count = torch.tensor([2.0**24, 2.0**30, 3.0e38])
    _, read_count = discounted_read(torch.zeros(3, 1), count, decay, N)
    limit = decay * N / (1 - decay)
    assert torch.isfinite(read_count).all()
    torch.testing.assert_close(read_count, torch.full((3,), limit), rtol=1e-6, atol=0)


@pytest.mark.parametrize("decay", [1.0, 1.0 - 1e-9])
def test_decay_one_reads_the_very_inputs(decay):
    """decay 1 (or one that rounds to 1 in fp32, the graph's precision) is no graph at all."""
    state, count = torch.randn(2, 3, 5), torch.tensor([0.0, 128.0, 256.0])
    read, read_count = discounted_read(state, count, decay, N)
    assert read is state and read_count is count


def test_decay_one_prefix_is_todays_cumsum_form():
    """``exclusive_prefix`` without a decay (and with 1.0) is the pre-issue formula, bit for bit."""
    sums, state = _sums()
    count = torch.tensor([0.0, 2.0 * N])
    today = torch.cat([state.unsqueeze(1), sums[:, :-1]], dim=1).cumsum(dim=1)
    today_count = count.unsqueeze(1) + N * torch.arange(sums.shape[1], dtype=torch.float32)
    for args in ((), (1.0,)):
        prefix, prefix_count = exclusive_prefix(sums, state, count, N, *args)
        assert torch.equal(prefix, today) and torch.equal(prefix_count, today_count)
