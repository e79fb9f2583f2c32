"""The records, summary and files of a ``verify`` run (verify.json, drift.json, drift.png).

JSON has no NaN or infinity: they are written as the strings ``"nan"`` and ``"inf"`` (a NaN
stays a NaN in the report, it is never turned into a large number).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch

from pomexport.export.artifact.gates import Gates
from pomexport.runtime.measure.compare import psnr, to_uint8

logger = logging.getLogger(__name__)

MILESTONES = (1, 16, 64, 256)
_MAX_LISTED = 5


def _rel(a: torch.Tensor, r: torch.Tensor) -> float:
    a, r = a.double(), r.double()
    if not (torch.isfinite(a).all() and torch.isfinite(r).all()):
        return math.nan
    scale = float(r.abs().max()) if r.numel() else 0.0
    return float((a - r).abs().max()) / max(scale, 1e-30)


def _stream_psnrs(a: torch.Tensor, r: torch.Tensor) -> list[float]:
    """Each stream's PSNR of the decoded uint8 frames (NaN when a frame is not finite)."""
    values = []
    for x, y in zip(a, r, strict=True):
        finite = bool(torch.isfinite(x).all() and torch.isfinite(y).all())
        values.append(psnr(to_uint8(x.numpy()), to_uint8(y.numpy())) if finite else math.nan)
    return values


def frame_record(frame: int, x_free, x_ref, s_free, s_ref, gates: Gates) -> dict:
    """Free-running artifact vs reference after committing frame ``frame`` (0-based).

    A NaN fails at once. A stream under the PSNR gate is only ``below_gate`` here: whether
    that frame fails is known one frame later (:func:`settle`)."""
    nonfinite = int((~torch.isfinite(x_free)).sum() + (~torch.isfinite(s_free)).sum())
    per_stream = _stream_psnrs(x_free, x_ref)
    psnr_db = math.nan if any(math.isnan(v) for v in per_stream) else min(per_stream)
    diff = (x_free.double() - x_ref.double()).abs()
    record = {
        "frame": frame + 1,
        "psnr_db": psnr_db,
        "psnr_db_per_stream": per_stream,
        "psnr_float_db": min(
            psnr(a.numpy(), r.numpy(), peak=2.0) for a, r in zip(x_free, x_ref, strict=True)
        ),
        "max_abs": float(diff.max()) if nonfinite == 0 else math.nan,
        "mean_abs": float(diff.mean()) if nonfinite == 0 else math.nan,
        "state_rel_per_layer": [_rel(s_free[i], s_ref[i]) for i in range(s_ref.shape[0])],
        "nonfinite": nonfinite,
    }
    failures = []
    if nonfinite:
        failures.append(f"frame {frame + 1}: {nonfinite} NaN/Inf values in the artifact's outputs")
    elif math.isnan(psnr_db):
        failures.append(f"frame {frame + 1}: PSNR nan dB (a reference frame is not finite)")
    below = [] if failures else [i for i, v in enumerate(per_stream) if v < gates.psnr_min_db]
    record["below_gate"] = below
    record["passed"] = not failures and not below
    record["failures"] = failures
    return record


def settle(record: dict, following: dict | None, gates: Gates) -> None:
    """Judge ``record``'s streams under the PSNR gate once ``following`` (the same streams'
    next frame, ``None`` after the last) is known. A stream back at or over the gate the next
    frame made a **transient**: a rounding tipped one sampling decision (an object a pixel
    over) and the stream came back to the reference's trajectory; it is reported, not failed.
    A stream still under the gate, or under it at the last frame, has drifted: that fails."""
    below = record["below_gate"]
    if not below or record.get("transient") or record["failures"]:
        return  # nothing to judge, or judged already
    gate = gates.psnr_min_db
    stuck = [
        i for i in below if following is None or not following["psnr_db_per_stream"][i] >= gate
    ]
    worst = min(record["psnr_db_per_stream"][i] for i in below)
    if not stuck:
        record["passed"], record["transient"] = True, True
        return
    after = record["frame"] + 1
    why = "the last frame" if following is None else f"still under it at frame {after}"
    streams = ", ".join(str(i) for i in stuck)
    record["failures"].append(
        f"frame {record['frame']}: PSNR {worst:.2f} dB < {gate} dB (stream {streams}: {why})"
    )
    record["passed"] = False


def _fit(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0])


def drift(frames: list[dict]) -> dict:
    """Slopes of the per-frame error against the frame index (1-based).

    ``log10_slope_per_frame``: linear fit of log10(max abs error of the decoded frame), i.e.
    decades per frame (frames with zero error, exact matches, are left out of the log fit);
    ``linear_slope_per_frame``: fit of the error itself; the same for the state's relative
    error (worst layer).
    """
    out = {"metric": "max abs error of the free-running frame vs the reference (pre-uint8)"}
    for key, values in (
        ("frame", [(f["frame"], f["max_abs"]) for f in frames]),
        ("state", [(f["frame"], max(f["state_rel_per_layer"])) for f in frames]),
    ):
        finite = [(i, e) for i, e in values if math.isfinite(e)]
        positive = [(i, e) for i, e in finite if e > 0]
        out[f"{key}_linear_slope_per_frame"] = (
            _fit(*zip(*finite, strict=True)) if len(finite) > 1 else None
        )
        out[f"{key}_log10_slope_per_frame"] = (
            _fit([i for i, _ in positive], [math.log10(e) for _, e in positive])
            if len(positive) > 1
            else None
        )
    return out


def _worst_steps(steps: list[dict]) -> dict:
    def worst(output: str, key: str, fn=max):
        values = [s[output][key] for s in steps]
        if any(isinstance(v, float) and math.isnan(v) for v in values):
            return math.nan
        return fn(values)

    return {
        "v_max_abs": worst("v", "max_abs"),
        "v_mean_abs": worst("v", "mean_abs"),
        "v_rel": worst("v", "rel"),
        "v_cosine_min": worst("v", "cosine", min),
        "state_out_max_abs": worst("state_out", "max_abs"),
        "state_out_rel": worst("state_out", "rel"),
        "state_out_cosine_min": worst("state_out", "cosine", min),
        "nan_steps": sum(1 for s in steps if s["v"]["nonfinite"] or s["state_out"]["nonfinite"]),
    }


def summarize(artifact, gates, source, settings, steps, frames, layerwise) -> dict:
    """The verdict and headline numbers of a run."""
    failed_steps = [s for s in steps if not s["passed"]]
    failed_frames = [f for f in frames if not f["passed"]]
    failures = []
    for s in failed_steps[:_MAX_LISTED]:
        for output in ("v", "state_out"):
            failures += [f"frame {s['frame']} step {s['step']}: {m}" for m in s[output]["failures"]]
    for f in failed_frames[:_MAX_LISTED]:
        failures += f["failures"]
    psnrs = [f["psnr_db"] for f in frames]
    transients = [f["frame"] for f in frames if f.get("transient")]
    return {
        "passed": not failed_steps and not failed_frames,
        "artifact": str(artifact.root),
        "model": artifact.model_name,
        "precision": artifact.precision,
        "settings": settings,
        "gates": gates.to_dict(),
        "gates_source": source,
        "failed_steps": len(failed_steps),
        "failed_frames": len(failed_frames),
        "failures": failures,
        # frames under the PSNR gate that the next frame recovered from (settle())
        "transient_frames": transients,
        "first_failing_layer": (layerwise or {}).get("first_failure"),
        "worst_step": _worst_steps(steps),
        "psnr_db_at_frame": {
            str(n): frames[n - 1]["psnr_db"] for n in MILESTONES if n <= len(frames)
        },
        "psnr_db_min": math.nan if any(math.isnan(p) for p in psnrs) else min(psnrs),
        "drift": drift(frames),
        "noise": "runtime frame_noise(seed=i, stream=0, frame), label i mod num_classes, "
        "Euler, no CFG; frames numbered from 1",
    }


def jsonable(value):
    """``value`` with NaN/inf floats as the strings "nan"/"inf"/"-inf" (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _write_json(path: Path, value) -> None:
    from pomexport.export.artifact.atomic import atomic_write

    text = json.dumps(jsonable(value), indent=1, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_report(report, out: Path) -> dict[str, str]:
    """verify.json (everything), drift.json (the per-frame curve) and drift.png. Without
    matplotlib (an optional extra) the PNG is left out with a warning: the verdict and the
    JSON files do not depend on it."""
    from importlib.util import find_spec

    from pomexport.runtime.measure.plots import plot_drift

    out.mkdir(parents=True, exist_ok=True)
    curve = {
        "summary": {k: report.summary[k] for k in ("artifact", "precision", "passed", "drift")},
        "frames": report.frames,
    }
    paths = {"report": out / "verify.json", "drift": out / "drift.json", "plot": out / "drift.png"}
    _write_json(paths["report"], report.to_dict())
    _write_json(paths["drift"], curve)
    if find_spec("matplotlib") is None:
        logger.warning("%s not drawn: it needs matplotlib (pip install pomexport[plots])",
                       paths.pop("plot"))  # fmt: skip
    else:
        plot_drift(report.frames, report.summary, paths["plot"])
    logger.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return {k: str(v) for k, v in paths.items()}
