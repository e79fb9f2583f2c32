"""``soak.png``: memory, drift against the fp32 reference, state magnitude and speed per frame."""

from __future__ import annotations

import os
from pathlib import Path

from pomexport.runtime.measure.plots import _finite, _pyplot, _write


def _series(samples: list[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [(s["frame"], s[key]) for s in samples if s.get(key) is not None]
    return [r[0] for r in rows], _finite([float(r[1]) for r in rows])


def soak_figure(samples: list[dict], summary: dict):
    """Four panels sharing the frame axis (matplotlib Figure)."""
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(8, 10), sharex=True, layout="constrained")
    x, rss = _series(samples, "rss_mib")
    axes[0].plot(x, rss, label="process RSS")
    if any(s.get("device_mib") is not None for s in samples):
        axes[0].plot(*_series(samples, "device_mib"), label="CUDA allocated")
    slope = summary.get("rss_slope_kib_per_1000_frames")
    warm = summary.get("warmup_until_frame")
    if warm:
        axes[0].axvline(warm, color="grey", linestyle=":", label=f"warm-up ends (frame {warm})")
    title = "memory" + (
        f" (RSS slope after warm-up: {slope:.1f} KiB / 1000 frames)" if slope is not None else ""
    )
    axes[0].set(ylabel="MiB", title=title)
    axes[0].legend(loc="lower right")
    positive = False
    for key, label in (("state_rel", "committed state"), ("v_rel", "commit velocity")):
        if any(key in s for s in samples):
            frames, values = _series(samples, key)
            axes[1].plot(frames, values, label=label)
            positive = positive or any(v > 0 for v in values)
    if positive:  # log scale; a run that is its own reference (all zeros) stays linear
        axes[1].set_yscale("log")
    axes[1].set(ylabel="relative L2 error", title="drift against the fp32 torch reference")
    axes[1].legend(loc="lower right")
    axes[2].plot(*_series(samples, "state_max_abs"))
    axes[2].set(
        ylabel="max |state|",
        title="committed state magnitude (finite throughout: "
        f"{summary.get('state_finite_throughout')})",
    )
    axes[3].plot(*_series(samples, "fps"))
    axes[3].set(ylabel="frames / s", xlabel="frame", title="speed (between samples)")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"soak: {summary.get('source')} on {summary.get('backend')} "
        f"({summary.get('frames_done')} frames, {summary['options']['steps']} steps/frame)"
    )
    return fig


def plot_soak(samples: list[dict], summary: dict, path: str | os.PathLike) -> Path:
    """Write :func:`soak_figure` as a PNG (atomically)."""
    return _write(soak_figure(samples, summary), Path(path))
