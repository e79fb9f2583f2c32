"""The bouncing-shapes quality metric: perfect on real clips, zero on noise, sensitive to
each failure it is meant to catch."""

from __future__ import annotations

import math

import pytest
import torch

from pomexport.models.demo_data import encode_label, render
from pomexport.models.quality import (
    evaluate_real,
    find_blobs,
    real_clips,
    real_frames,
    score_clips,
    score_windows,
)


@pytest.fixture(scope="module")
def real():
    return real_clips(12, 10, seed=0)


def test_real_clips_score_perfectly(real):
    report = score_clips(*real)
    assert report.single_blob == 1.0 and report.consistency == 1.0
    assert 0.0 < report.jerk < 1.0  # bounces only: |d2| is 0 or 2 px (or 2*sqrt(2))
    assert (report.clips, report.frames) == (12, 10)


def test_blobs_read_shape_colour_and_centroid():
    for shape in range(3):
        label = torch.tensor([encode_label(shape, 1, 0)])
        frame = render(label, torch.tensor([[[4, 2]]]))[0, 0]
        (blob,) = find_blobs(frame)
        assert (blob.shape, blob.colour, blob.box, blob.valid) == (shape, 1, (7, 7), True)
        if shape < 2:  # symmetric shapes: the centroid is the box centre
            assert blob.centroid == pytest.approx((7.0, 5.0))


def test_noise_scores_zero(real):
    clips, labels = real
    report = score_clips(torch.randn(clips.shape, generator=torch.Generator()), labels)
    assert report.single_blob == 0.0 and report.consistency == 0.0
    assert math.isnan(report.jerk)


def test_wrong_colour_fails_a_but_not_c(real):
    clips, labels = real
    report = score_clips(clips.roll(1, dims=2), labels)  # rgb -> brg: every colour changes
    assert report.single_blob == 0.0 and report.consistency == 1.0


def test_a_second_blob_or_a_jump_is_caught(real):
    clips, labels = real
    specks = clips.clone()
    # White 2x2 specks in two corners of every other frame: at least one is a second blob.
    specks[:, ::2, :, 0:2, 0:2] = 1.0
    specks[:, ::2, :, 14:16, 14:16] = 1.0
    assert score_clips(specks, labels).single_blob <= 0.5 + 1e-6
    shuffled = clips[:, torch.randperm(clips.shape[1], generator=torch.Generator())]
    assert score_clips(shuffled, labels).consistency < 0.8


def test_evaluate_real_skips_the_first_frames():
    report = evaluate_real(4, 6, seed=1, skip=10)
    assert report.frames == 6 and report.single_blob == 1.0


def test_real_frames_stream_the_real_clips():
    clips, labels = real_clips(3, 40, seed=4)
    streamed = torch.stack(list(real_frames(3, 40, seed=4, chunk=7)), dim=1)
    assert torch.equal(streamed, clips)


def test_windows_score_each_window_like_the_whole_clip_scorer():
    clips, labels = real_clips(4, 48, seed=1)
    noisy = clips.clone()
    noisy[:, 20:23] = torch.randn(4, 3, *clips.shape[2:])  # spoil the second window only
    windows = list(score_windows(noisy.unbind(dim=1), labels, window=16))
    assert [(w.first, w.last) for w in windows] == [(1, 16), (17, 32), (33, 48)]
    for w in windows:
        assert w.report == score_clips(noisy[:, w.first - 1 : w.last], labels)
    assert windows[0].report.single_blob == 1.0 > windows[1].report.single_blob
