"""Long-horizon quality: score every window of a long stream (``pomexport eval --curve``).

A model that is sharp for the frames it was trained on can still fall apart later; this
generates one stream per evaluation label frame by frame with the state, scores each
window of ``window`` consecutive frames as it completes (``models/quality.py``), and keeps
nothing of the clip but the current window, so curves to frame 4,096 and beyond cost flat
memory. Real clips with the same labels and starts are scored the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from pomexport.models.quality import (
    QualityReport,
    check_scorable,
    eval_labels,
    real_frames,
    score_clips,
    score_windows,
)
from pomexport.runtime.api import generate, generate_frames
from pomexport.runtime.loading import load_backend

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurveSettings:
    """What a curve was made with (every source gets the same)."""

    clips: int = 8
    frames: int = 4096
    window: int = 16
    steps: int = 20
    cfg_scale: float = 2.0
    seed: int = 0


def _windows(frames: Iterable[torch.Tensor], labels: torch.Tensor, window: int, name: str):
    rows = []
    for w in score_windows(frames, labels, window):
        rows.append(w.to_dict())
        if (w.last & (w.last - 1)) == 0:  # a log line at every power of two
            logger.info("%s frames %d-%d: %s", name, w.first, w.last, w.report)
    return rows


def _bar(frames: Iterable[torch.Tensor], total: int, name: str, progress: bool):
    from tqdm.auto import tqdm

    short = os.path.basename(os.path.normpath(name)) or name
    return tqdm(frames, total=total, desc=short, unit="frame", disable=not progress)


def quality_curve(
    sources: Sequence[str | os.PathLike],
    settings: CurveSettings | None = None,
    progress: bool = False,
) -> dict:
    """Per-window quality of real clips and of each source (bundled name, weights file,
    or artifact directory, run on its best backend) over ``settings.frames`` frames, with a
    progress bar per source when ``progress``.

    Returns ``{"settings": ..., "curves": {"real": [window, ...], source: [...]}}`` where
    each window is ``{"first", "last", "single_blob", "jerk", "consistency", ...}``.
    """
    s = settings or CurveSettings()
    labels = eval_labels(s.clips)
    real = _bar(real_frames(s.clips, s.frames, s.seed), s.frames, "real", progress)
    curves = {"real": _windows(real, labels, s.window, "real")}
    for source in sources:
        backend = load_backend(source)
        check_scorable(str(source), backend.config)
        made = generate_frames(
            backend, labels.tolist(), s.frames, s.steps, s.cfg_scale, s.seed, progress=False
        )
        made = _bar(made, s.frames, str(source), progress)
        curves[str(source)] = _windows(made, labels, s.window, str(source))
    return {"settings": vars(s) | {"labels": labels.tolist()}, "curves": curves}


def at_frame(curve: list[dict], frame: int) -> dict | None:
    """The window of ``curve`` that ends at ``frame`` (None when there is none)."""
    return next((w for w in curve if w["last"] == frame), None)


def evaluate_model(
    model: torch.nn.Module,
    clips: int,
    frames: int,
    seed: int = 0,
    skip: int = 0,
    **sampler,
) -> QualityReport:
    """Generate ``clips`` clips of ``skip + frames`` frames (frame by frame with the state,
    ``pomexport.runtime.generate``) and score the last ``frames`` frames.

    ``sampler`` goes to ``generate`` (``steps``, ``cfg_scale``, ``sampler``, ``shift``).
    """
    labels = eval_labels(clips)
    with torch.no_grad():
        video = generate(model, labels, skip + frames, seed=seed, **sampler)
    return score_clips(video[:, skip:], labels)
