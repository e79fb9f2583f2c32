"""Bouncing-shapes data: deterministic, one shape of the label's colour, bounded motion."""

from __future__ import annotations

import torch

from pomexport.models.demo_data import (
    BOX,
    NUM_CLASSES,
    PALETTE,
    SIZE,
    SPAN,
    BouncingShapes,
    decode_label,
    encode_label,
    sample_clips,
    shape_masks,
    trajectories,
)


def test_same_seed_same_stream_other_seed_differs():
    xa, la = next(BouncingShapes(4, 8, seed=3))
    xb, lb = next(BouncingShapes(4, 8, seed=3))
    assert torch.equal(xa, xb) and torch.equal(la, lb)
    xc, _ = next(BouncingShapes(4, 8, seed=4))
    assert not torch.equal(xa, xc)


def test_labels_round_trip_and_cover_all_factors():
    labels = torch.arange(NUM_CLASSES)
    parts = decode_label(labels)
    rebuilt = [
        encode_label(int(s), int(c), int(d))
        for s, c, d in zip(parts.shape, parts.colour, parts.direction, strict=True)
    ]
    assert rebuilt == labels.tolist()
    assert NUM_CLASSES == 36


def test_masks_have_the_documented_fill_ratios():
    fill = shape_masks().float().mean(dim=(1, 2))
    torch.testing.assert_close(fill, torch.tensor([1.0, 37 / 49, 25 / 49]))


def test_each_frame_holds_one_shape_of_the_label_colour():
    gen = torch.Generator().manual_seed(0)
    clips, labels = sample_clips(6, 12, gen)
    assert clips.shape == (6, 12, 3, SIZE, SIZE)
    assert clips.min() == -1 and clips.max() == 1
    masks = shape_masks()
    parts = decode_label(labels)
    for clip, shape, colour in zip(clips, parts.shape, parts.colour, strict=True):
        fg = (clip > 0).any(dim=1)  # (F, H, W)
        assert (fg.sum(dim=(1, 2)) == masks[shape].sum()).all()
        colours = clip.permute(0, 2, 3, 1)[fg]
        assert (colours == PALETTE[colour]).all()


def test_motion_is_one_diagonal_pixel_per_frame_and_bounces_inside():
    labels = torch.arange(NUM_CLASSES)
    starts = torch.randint(0, SPAN + 1, (NUM_CLASSES, 2), generator=torch.Generator())
    corners = trajectories(labels, starts, 40)
    assert corners.min() >= 0 and corners.max() <= SIZE - BOX
    steps = corners.diff(dim=1).abs()
    assert (steps == 1).all()  # never stands still, even at a wall
