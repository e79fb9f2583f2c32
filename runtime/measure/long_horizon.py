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
from pathlib import Path

import torch

from pomexport.errors import ConfigError
from pomexport.models.quality import (
    QualityReport,
    check_scorable,
    eval_labels,
    evaluate_real,
    real_frames,
    score_clips,
    score_windows,
)
from pomexport.models.registry import DEFAULT_MODEL, load_model
from pomexport.runtime.api import generate, generate_frames
from pomexport.runtime.loading import load_backend

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Sampled:
    """Clips per source and how each is sampled: the same for eval's table and its curve."""

    clips: int
    steps: int = 20
    cfg_scale: float = 2.0
    seed: int = 0

    def _check(self, frames: int, skip: int = 0) -> None:
        if self.clips < 1 or frames < 2 or skip < 0 or self.steps < 1:
            raise ConfigError("need --clips >= 1, --frames >= 2, --skip >= 0 and --steps >= 1")


@dataclass(frozen=True)
class EvalSettings(_Sampled):
    """What ``pomexport eval`` scores: ``clips`` clips per model, frames ``skip + 1`` to
    ``skip + frames`` of each, sampled with ``steps`` Euler steps at CFG ``cfg_scale``."""

    clips: int = 64
    frames: int = 16
    skip: int = 0

    def __post_init__(self) -> None:
        self._check(self.frames, self.skip)


@dataclass(frozen=True)
class CurveSettings(_Sampled):
    """What a curve was made with (every source gets the same): ``frames`` frames per clip
    (``eval --curve``), scored per window of ``window`` frames (``eval --frames``)."""

    clips: int = 8
    frames: int = 4096
    window: int = 16

    def __post_init__(self) -> None:
        self._check(self.window)
        if self.frames < self.window:
            raise ConfigError(
                f"--curve {self.frames} is shorter than one window (--frames {self.window})"
            )


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


def quality_table(
    models: Sequence[str] = (DEFAULT_MODEL,), settings: EvalSettings | None = None
) -> dict[str, dict]:
    """``{"real": scores, model: scores, ...}``: real clips and each model (bundled name,
    preset or weights file) scored on the same labels and frames (``evaluate_model``)."""
    s = settings or EvalSettings()
    rows = {"real": evaluate_real(s.clips, s.frames, s.seed, s.skip).to_dict()}
    for name in models:
        model = load_model(name)
        check_scorable(name, model.cfg)
        sampler = {"steps": s.steps, "cfg_scale": s.cfg_scale}
        rows[name] = evaluate_model(model, s.clips, s.frames, s.seed, s.skip, **sampler).to_dict()
    return rows


def curve_paths(prefix: str | os.PathLike) -> tuple[Path, Path]:
    """``PREFIX.json`` and ``PREFIX.png``, once their folder exists (checked before a curve
    of minutes, not after)."""
    prefix = Path(prefix)
    if not prefix.parent.is_dir():
        raise ConfigError(f"output folder does not exist: {prefix.parent}")
    return prefix.with_suffix(".json"), prefix.with_suffix(".png")


def write_curve(report: dict, prefix: str | os.PathLike) -> tuple[Path, Path]:
    """``report`` (:func:`quality_curve`) as ``PREFIX.json`` (atomic) and its plot as
    ``PREFIX.png`` (one line per source, real dashed)."""
    import json

    from pomexport.export.artifact.atomic import atomic_write
    from pomexport.runtime.measure.plots import plot_curve

    json_path, png_path = curve_paths(prefix)
    text = json.dumps(report, indent=1) + "\n"
    atomic_write(json_path, lambda tmp: tmp.write_text(text))
    plot_curve(report, png_path)
    return json_path, png_path
