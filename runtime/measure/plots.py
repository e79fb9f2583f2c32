"""PNG plots: ``verify``'s drift curve and ``bench``'s latency per frame index.

matplotlib is optional (``pip install pomexport[plots]``): imported inside each function,
with the non-interactive Agg backend, so nothing else needs it.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = [
    "bench_figure",
    "curve_figure",
    "drift_figure",
    "plot_bench",
    "plot_curve",
    "plot_drift",
]


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ConfigError(
            "plots need matplotlib: pip install matplotlib (or pomexport[plots])"
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    from pomexport.export.artifact.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    logger.info("wrote %s", path)


def _finite(values: list[float]) -> list[float]:
    """NaN stays NaN (a gap in the line); infinity (exact match) also leaves a gap."""
    return [v if isinstance(v, float | int) and math.isfinite(v) else math.nan for v in values]


def plot_drift(frames: list[dict], summary: dict, path: str | os.PathLike) -> Path:
    """Write :func:`drift_figure` as a PNG."""
    return _write(drift_figure(frames, summary), Path(path))


def plot_bench(report: dict, path: str | os.PathLike) -> Path:
    """Write :func:`bench_figure` of a ``pomexport bench`` JSON report as a PNG."""
    return _write(bench_figure(report), Path(path))


def plot_curve(report: dict, path: str | os.PathLike) -> Path:
    """Write :func:`curve_figure` of a ``pomexport eval --curve`` report as a PNG."""
    return _write(curve_figure(report), Path(path))


def _write(fig, path: Path) -> Path:
    _save(fig, path)
    _pyplot().close(fig)
    return path


def drift_figure(frames: list[dict], summary: dict):
    """Two panels against the frame index: errors (log scale) and PSNR of the decoded frame.

    Frames that match exactly (error 0, PSNR infinite) leave gaps, said in the title.
    """
    plt = _pyplot()
    idx = [f["frame"] for f in frames]
    fig, (err_ax, psnr_ax) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    frame_err = _finite([f["max_abs"] for f in frames])
    state_err = _finite([max(f["state_rel_per_layer"]) for f in frames])
    err_ax.plot(idx, [e if e > 0 else math.nan for e in frame_err], label="frame max abs error")
    state_err = [e if e > 0 else math.nan for e in state_err]
    err_ax.plot(idx, state_err, label="state rel error (worst layer)")
    err_ax.set_yscale("log")
    err_ax.set_ylabel("error vs reference")
    err_ax.legend(loc="best", fontsize=8)
    err_ax.grid(True, which="both", alpha=0.3)
    identical = sum(1 for f in frames if f["psnr_db"] == math.inf)
    label = f"uint8 frame (identical, PSNR inf, at {identical}/{len(frames)} frames)"
    psnr_ax.plot(idx, _finite([f["psnr_db"] for f in frames]), label=label, marker=".")
    psnr_ax.plot(idx, _finite([f["psnr_float_db"] for f in frames]), label="float frame (peak 2)")
    psnr_ax.axhline(summary["gates"]["psnr_min_db"], color="red", ls="--", label="gate")
    psnr_ax.set_xlabel("frame index (1 = first frame)")
    psnr_ax.set_ylabel("PSNR (dB)")
    psnr_ax.legend(loc="best", fontsize=8)
    psnr_ax.grid(True, alpha=0.3)
    verdict = "PASS" if summary["passed"] else "FAIL"
    fig.suptitle(
        f"{summary['model']} {summary['precision']} vs {summary['settings']['against']}: "
        f"{verdict} (gaps: exact match or NaN)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def bench_figure(report: dict):
    """One panel per preset: frame latency against the frame index, one line per series
    (PoM on each backend, the attention baseline with KV cache and recompute)."""
    plt = _pyplot()
    rows = [r for r in report.get("rows", []) if "frame_ms" in r]
    if not rows:
        raise ConfigError("the bench report has no measured rows to plot")
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    fig, axes = plt.subplots(1, len(presets), figsize=(6 * len(presets), 4.5), squeeze=False)
    for ax, preset in zip(axes[0], presets, strict=True):
        mine = [r for r in rows if r["preset"] == preset]
        for series in dict.fromkeys(r["series"] for r in mine):
            points = sorted((r["frame"], r["frame_ms"]) for r in mine if r["series"] == series)
            style = "-" if series.startswith("pom") else "--"
            ax.plot(*zip(*points, strict=True), style, marker="o", label=series)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("frame index (context = index - 1 frames)")
        ax.set_ylabel("latency per frame (ms)")
        ax.set_title(f"{preset}: PoM vs attention", fontsize=10)
        ax.legend(loc="best", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def curve_figure(report: dict):
    """Three panels against the last frame of each window (log scale): (a) single blob,
    (b) jerk, (c) consistency; one line per source, real data dashed."""
    plt = _pyplot()
    settings = report["settings"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (("single_blob", "(a) single blob"), ("jerk", "(b) jerk, px"))
    panels += (("consistency", "(c) consistency"),)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for name, windows in report["curves"].items():
            style = "--" if name == "real" else "-"
            ends = [w["last"] for w in windows]
            ax.plot(ends, _finite([w[key] for w in windows]), style, label=name, lw=1.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"last frame of each {settings['window']}-frame window")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(
        f"{settings['clips']} clips x {settings['frames']} frames, {settings['steps']} Euler "
        f"steps, cfg {settings['cfg_scale']}, frame by frame with the state",
        fontsize=10,
    )
    fig.tight_layout()
    return fig
