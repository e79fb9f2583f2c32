"""Synthetic bouncing-shapes clips for the bundled tiny video model, made on the fly.

Frames are 16x16 RGB in [-1, 1] on a black background (all channels -1). Each clip holds one
shape inside a 7x7 box that moves one pixel per frame along a diagonal and bounces off the
borders (the box's top-left corner stays in ``[0, 9]``). The start position is uniform.

The class label encodes the shape, its colour and its initial direction::

    label = 12 * shape + 4 * colour + direction          (36 classes, 0..35)

    shape      0 square (7x7, fill 1.00)   1 circle (r 3.5, fill 0.76)
               2 triangle (apex up, fill 0.51)
    colour     0 red (1, -1, -1)   1 green (-1, 1, -1)   2 blue (-1, -1, 1)
    direction  0 (+1, +1)   1 (+1, -1)   2 (-1, +1)   3 (-1, -1)     as (dy, dx) px/frame

Everything is a pure function of the label and a ``torch.Generator``, so a seed fixes the
data order exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

SIZE = 16  # frame height == width
BOX = 7  # shape bounding box
SPAN = SIZE - BOX  # top-left corner in [0, SPAN]
SHAPES = ("square", "circle", "triangle")
COLOURS = ("red", "green", "blue")
PALETTE = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])
BACKGROUND = torch.tensor([-1.0, -1.0, -1.0])
DIRECTIONS = torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]])
NUM_CLASSES = len(SHAPES) * len(COLOURS) * len(DIRECTIONS)


@dataclass(frozen=True)
class LabelParts:
    """The three factors of a label (each a tensor of the labels' shape)."""

    shape: torch.Tensor
    colour: torch.Tensor
    direction: torch.Tensor


def encode_label(shape: int, colour: int, direction: int) -> int:
    """Class index of (shape, colour, direction); see the module docstring."""
    return 12 * shape + 4 * colour + direction


def decode_label(label: torch.Tensor) -> LabelParts:
    """Split labels (any shape, int64) into shape, colour and direction indices."""
    return LabelParts(label // 12, (label // 4) % 3, label % 4)


def shape_masks() -> torch.Tensor:
    """Boolean masks (3, BOX, BOX) of the square, circle and triangle."""
    coords = torch.arange(BOX, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    centre = (BOX - 1) / 2
    square = torch.ones(BOX, BOX, dtype=torch.bool)
    circle = (rows - centre) ** 2 + (cols - centre) ** 2 <= (BOX / 2) ** 2
    # Apex up: row r spans 2*floor(r/2)+1 pixels around the centre column (1,1,3,3,5,5,7).
    half_width = torch.div(rows, 2, rounding_mode="floor")
    triangle = (cols - centre).abs() <= half_width
    return torch.stack([square, circle, triangle])


def bounce(start: torch.Tensor, velocity: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Positions on [0, SPAN] reflecting at both ends: a triangle wave of period 2*SPAN."""
    raw = (start + velocity * frames) % (2 * SPAN)
    return torch.where(raw <= SPAN, raw, 2 * SPAN - raw)


def trajectories(
    label: torch.Tensor, start: torch.Tensor, frames: int, first: int = 0
) -> torch.Tensor:
    """Top-left corners (B, F, 2) as (row, col) of frames ``first .. first + F - 1`` for
    labels (B,) and frame-0 corners ``start`` (B, 2)."""
    velocity = DIRECTIONS[decode_label(label).direction]  # (B, 2)
    f = torch.arange(first, first + frames).view(1, frames, 1)
    return bounce(start.unsqueeze(1), velocity.unsqueeze(1), f)


def render(label: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Frames (B, F, 3, SIZE, SIZE) in [-1, 1] of labels (B,) at corners (B, F, 2)."""
    parts = decode_label(label)
    grid = torch.arange(SIZE)
    local_r = grid.view(1, 1, SIZE, 1) - corners[..., 0, None, None]  # (B, F, SIZE, 1)
    local_c = grid.view(1, 1, 1, SIZE) - corners[..., 1, None, None]  # (B, F, 1, SIZE)
    inside = (local_r >= 0) & (local_r < BOX) & (local_c >= 0) & (local_c < BOX)
    masks = shape_masks()[parts.shape]  # (B, BOX, BOX)
    b = torch.arange(label.shape[0]).view(-1, 1, 1, 1)
    hit = masks[b, local_r.clamp(0, BOX - 1), local_c.clamp(0, BOX - 1)] & inside
    colour = PALETTE[parts.colour].view(-1, 1, 3, 1, 1)
    return torch.where(hit.unsqueeze(2), colour, BACKGROUND.view(1, 1, 3, 1, 1))


def sample_clips(
    batch: int, frames: int, generator: torch.Generator, label: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of clips (B, F, 3, 16, 16) and their labels (B,), drawn from ``generator``.

    ``label`` fixes the classes (the start positions are still drawn).
    """
    if label is None:
        label = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    start = torch.randint(0, SPAN + 1, (label.shape[0], 2), generator=generator)
    return render(label, trajectories(label, start, frames)), label


class BouncingShapes:
    """An endless, seeded stream of clip batches: ``next(iter(BouncingShapes(...)))``."""

    def __init__(self, batch: int, frames: int, seed: int = 0) -> None:
        self.batch, self.frames = batch, frames
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> BouncingShapes:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_clips(self.batch, self.frames, self.generator)
