"""A quality metric for bouncing-shapes clips that needs no human eyes (``pomexport eval``).

Per frame, pixels with any channel above 0 (half-way between the black background and a
pure palette colour) are foreground; 4-connected components of at least ``MIN_AREA`` pixels
are blobs. A blob is a *valid shape* when its bounding box is 5..9 px per side, its area is
15..64 px and its mean colour lies within ``COLOUR_TOL`` of a palette colour; its shape is
read from its fill ratio (area / bounding-box area: square 1.00, circle 0.76, triangle 0.51).

Three numbers per set of clips:

- ``single_blob`` (a): fraction of frames holding exactly one blob, valid, of the shape and
  colour the label asks for.
- ``jerk`` (b): mean |second difference| (px, Euclidean) of the blob centroid over three
  consecutive single-blob frames; real clips are not 0 because of bounces. Lower is smoother.
- ``consistency`` (c): fraction of consecutive frame pairs that both hold exactly one valid
  blob with the same shape and colour, areas within 25 % and a centroid step of at most
  ``MAX_STEP`` px (the true step is sqrt(2)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pomexport.models.demo_data import (
    NUM_CLASSES,
    PALETTE,
    SPAN,
    decode_label,
    render,
    sample_clips,
    trajectories,
)

MIN_AREA = 4
AREA_RANGE = (15, 64)
BOX_RANGE = (5, 9)
COLOUR_TOL = 0.75
FILL_CUTS = (0.88, 0.63)  # fill >= 0.88 square, >= 0.63 circle, else triangle
AREA_TOL = 0.25
MAX_STEP = 2.5


@dataclass(frozen=True)
class Blob:
    """One connected foreground component of a frame."""

    area: int
    centroid: tuple[float, float]  # (row, col)
    box: tuple[int, int]  # (height, width)
    colour: int  # nearest palette index, -1 when too far from all
    shape: int  # 0 square, 1 circle, 2 triangle (from the fill ratio)

    @property
    def valid(self) -> bool:
        lo, hi = BOX_RANGE
        return (
            AREA_RANGE[0] <= self.area <= AREA_RANGE[1]
            and all(lo <= s <= hi for s in self.box)
            and self.colour >= 0
        )


@dataclass(frozen=True)
class QualityReport:
    """Metric values over a set of clips (see the module docstring)."""

    single_blob: float
    jerk: float
    consistency: float
    clips: int
    frames: int

    def to_dict(self) -> dict:
        return asdict(self)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean (H, W) mask, as arrays of (row, col) pixels."""
    seen = np.zeros_like(mask)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        stack, pixels = [(r0, c0)], []
        while stack:
            r, c = stack.pop()
            pixels.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        out.append(np.array(pixels))
    return out


def _blob(frame: np.ndarray, pixels: np.ndarray) -> Blob:
    rows, cols = pixels[:, 0], pixels[:, 1]
    box = (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1))
    mean = frame[:, rows, cols].mean(axis=1)
    dist = np.linalg.norm(PALETTE.numpy() - mean, axis=1)
    colour = int(dist.argmin()) if dist.min() <= COLOUR_TOL else -1
    fill = len(pixels) / (box[0] * box[1])
    shape = 0 if fill >= FILL_CUTS[0] else 1 if fill >= FILL_CUTS[1] else 2
    return Blob(len(pixels), (float(rows.mean()), float(cols.mean())), box, colour, shape)


def find_blobs(frame: np.ndarray | torch.Tensor) -> list[Blob]:
    """Blobs of one frame (3, H, W) in [-1, 1]."""
    frame = np.asarray(frame, dtype=np.float32)
    mask = (frame > 0).any(axis=0)
    return [_blob(frame, p) for p in _components(mask) if len(p) >= MIN_AREA]


def _single(blobs: list[Blob]) -> Blob | None:
    return blobs[0] if len(blobs) == 1 and blobs[0].valid else None


def _consistent(a: Blob | None, b: Blob | None) -> bool:
    if a is None or b is None or (a.shape, a.colour) != (b.shape, b.colour):
        return False
    step = math.dist(a.centroid, b.centroid)
    return abs(a.area - b.area) <= AREA_TOL * max(a.area, b.area) and step <= MAX_STEP


def _jerks(singles: Sequence[Blob | None]) -> list[float]:
    out = []
    for a, b, c in zip(singles, singles[1:], singles[2:], strict=False):
        if a is not None and b is not None and c is not None:
            d2 = np.subtract(np.add(a.centroid, c.centroid), np.multiply(2, b.centroid))
            out.append(float(np.linalg.norm(d2)))
    return out


def score_clips(clips: torch.Tensor, labels: torch.Tensor) -> QualityReport:
    """The metric of clips (B, F, 3, H, W) in [-1, 1] conditioned on labels (B,)."""
    parts = decode_label(labels)
    hits, pairs, jerks = [], [], []
    for clip, shape, colour in zip(
        clips.float().cpu().numpy(), parts.shape, parts.colour, strict=True
    ):
        singles = [_single(find_blobs(frame)) for frame in clip]
        want = (int(shape), int(colour))
        hits += [s is not None and (s.shape, s.colour) == want for s in singles]
        pairs += [_consistent(a, b) for a, b in zip(singles, singles[1:], strict=False)]
        jerks += _jerks(singles)
    return QualityReport(
        single_blob=float(np.mean(hits)),
        jerk=float(np.mean(jerks)) if jerks else float("nan"),
        consistency=float(np.mean(pairs)) if pairs else float("nan"),
        clips=int(clips.shape[0]),
        frames=int(clips.shape[1]),
    )


def check_scorable(name: str, cfg) -> None:
    """ConfigError unless a model of config ``cfg`` makes bouncing-shapes frames."""
    from pomexport.errors import ConfigError
    from pomexport.models.demo_data import SIZE

    if (cfg.input_size, cfg.in_channels, cfg.text_dim) != (SIZE, 3, 0) or (
        cfg.num_classes < NUM_CLASSES
    ):
        raise ConfigError(
            f"{name}: eval scores bouncing-shapes clips and needs a {SIZE}x{SIZE} RGB "
            f"class-conditional model with >= {NUM_CLASSES} classes"
        )


def eval_labels(clips: int) -> torch.Tensor:
    """The labels scored: 0, 7, 14, ... mod 36 — every class once per 36 clips, and a few
    clips already mix shapes, colours and directions (7 is coprime to 36)."""
    return (7 * torch.arange(clips)) % NUM_CLASSES


def real_clips(clips: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real bouncing-shapes clips with the evaluation labels, deterministic by seed."""
    gen = torch.Generator().manual_seed(seed)
    return sample_clips(clips, frames, gen, label=eval_labels(clips))


def evaluate_real(clips: int, frames: int, seed: int = 0, skip: int = 0) -> QualityReport:
    """The metric of real data (the reference the model is compared with)."""
    video, labels = real_clips(clips, skip + frames, seed)
    return score_clips(video[:, skip:], labels)


@dataclass(frozen=True)
class WindowReport:
    """The metric of one window of a long stream: frames ``first..last`` (1-based)."""

    first: int
    last: int
    report: QualityReport

    def to_dict(self) -> dict:
        return {"first": self.first, "last": self.last, **self.report.to_dict()}


def score_windows(
    frames: Iterable[torch.Tensor], labels: torch.Tensor, window: int = 16
) -> Iterator[WindowReport]:
    """Score a stream window by window as its frames arrive.

    ``frames`` yields (B, 3, H, W) — one frame of every clip at a time, as
    ``pomexport.runtime.generate_frames`` makes them — and only the current ``window``
    frames are held, so a stream of any length is scored in flat memory. Every complete
    window of ``window`` consecutive frames (1..16, 17..32, ...) yields its report.
    """
    held: list[torch.Tensor] = []
    first = 1
    for frame in frames:
        held.append(frame.float().cpu())
        if len(held) == window:
            report = score_clips(torch.stack(held, dim=1), labels)
            yield WindowReport(first, first + window - 1, report)
            held, first = [], first + window


def real_frames(clips: int, frames: int, seed: int = 0, chunk: int = 256) -> Iterator[torch.Tensor]:
    """The frames of :func:`real_clips` (same labels and starts) one at a time, rendered
    ``chunk`` frames at a time: real data for windows of a stream of any length."""
    gen = torch.Generator().manual_seed(seed)
    labels = eval_labels(clips)
    # sample_clips draws the starts right after the labels are fixed: the same draw.
    start = torch.randint(0, SPAN + 1, (clips, 2), generator=gen)
    for first in range(0, frames, chunk):
        n = min(chunk, frames - first)
        video = render(labels, trajectories(labels, start, n, first))
        yield from video.unbind(dim=1)
