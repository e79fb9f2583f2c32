"""Accuracy gates: the tolerances an artifact must meet against its PyTorch reference.

Written into the manifest at export time (``manifest["gates"]``, one entry per precision, so
an artifact that calibration turns into int8 still carries its int8 gates) and read back by
``pomexport verify``; defaults apply when an artifact has none, and the report says so.

Per step (the artifact fed the reference's exact inputs: one step's own error):
  ``v``: max abs, relative (``max|a-r| / max|r|``) and cosine bounds;
  ``state_out``: relative and cosine bounds (the state is a sum of features: its scale grows
  with the frames committed, so an absolute bound would not mean the same at frame 1 and 256).
Per frame (both sides generating on their own from the same noise: accumulated drift):
  ``psnr_min_db``: PSNR of the decoded uint8 frame, every frame of every stream. A frame
  under it fails unless the same stream is back at or over it the next frame: a rounding
  can tip one sampling decision (an object a pixel over) and the stream then comes back to
  the reference's trajectory, a transient that ``verify`` reports; drift persists (the
  bundled model's fp16 build: frame 2 at 38.9 dB, frame 3 at 62 dB). The last frame, with
  no next one, must be over it.
``layer_rel``: bound used by the layerwise search for the first layer that goes wrong.

How the defaults were chosen: ``pomexport verify --frames 256 --steps 4 --seeds 2`` (ONNX
Runtime CPU vs torch, 256 frames x 5 evaluations = 1280 compared steps of 2 streams) on the
``tiny`` preset (random weights) and on a step-300 checkpoint of the demo model's training;
worst step over the run and worst frame PSNR, as ``tiny / checkpoint``:

======  ==================  ==================  ==================  ===========  =========
        v max abs           v rel               state rel           1 - cosine   PSNR min
======  ==================  ==================  ==================  ===========  =========
fp32    1.3e-5 / 5.6e-6     3.8e-6 / 2.0e-6     5.8e-6 / 3.3e-7     < 1e-11      77 / 77 dB
fp16    2.6e-3 / 1.2e-2     7.6e-4 / 4.6e-3     4.2e-4 / 8.9e-4     1e-7/3e-6    62 / 62 dB
int8 e  0.57 / 1.24         0.19 / 0.39         0.020 / 0.041       9e-4/9e-3    43 / 31 dB
int8 p  - / 0.62            - / 0.16            - / 0.015           - / 2.8e-3   - / 43 dB
======  ==================  ==================  ==================  ===========  =========

(int8 e: entropy calibration, int8 p: percentile, ``pomexport calibrate``'s default since.)

fp32 differs from torch by float reordering only: the bounds sit ~8x above it (state 1e-5 is
tight on purpose: the state is exact sums) and one perturbed weight fails them. fp16: ~4x
above the trained checkpoint. int8 (the calibrated Q/DQ graph, run by ONNX Runtime): per-step
errors are large near t = 0, so the step bounds sit ~1.5-2x above the worst calibration
measured (entropy) and the decoded frame's PSNR carries the verdict. (1 - cosine: the worse
of v and state_out.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_GATES", "Gates", "default_gates_entry", "gates_for"]


@dataclass(frozen=True)
class Tolerance:
    """Bounds for one output; ``None`` disables a bound."""

    max_abs: float | None = None
    rel: float | None = None
    cosine_min: float | None = None

    @classmethod
    def from_dict(cls, entry: Mapping) -> Tolerance:
        return cls(**{k: entry[k] for k in ("max_abs", "rel", "cosine_min") if k in entry})


@dataclass(frozen=True)
class Gates:
    """Tolerances of one precision (see the module docstring for what each bounds)."""

    v_max_abs: float
    v_rel: float
    state_rel: float
    cosine_min: float
    psnr_min_db: float
    layer_rel: float

    def step_tolerances(self) -> dict[str, Tolerance]:
        return {
            "v": Tolerance(max_abs=self.v_max_abs, rel=self.v_rel, cosine_min=self.cosine_min),
            "state_out": Tolerance(rel=self.state_rel, cosine_min=self.cosine_min),
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: Mapping) -> Gates:
        return cls(**{k: float(entry[k]) for k in cls.__dataclass_fields__})


DEFAULT_GATES: dict[str, Gates] = {
    "fp32": Gates(
        v_max_abs=1e-4,
        v_rel=1e-4,
        state_rel=1e-5,
        cosine_min=0.999999,
        psnr_min_db=50.0,
        layer_rel=1e-4,
    ),
    "fp16": Gates(
        v_max_abs=5e-2,
        v_rel=2e-2,
        state_rel=5e-3,
        cosine_min=0.9995,
        psnr_min_db=40.0,
        layer_rel=3e-2,
    ),
    "int8": Gates(
        v_max_abs=2.0,
        v_rel=0.6,
        state_rel=0.1,
        cosine_min=0.98,
        psnr_min_db=28.0,
        layer_rel=0.5,
    ),
}


def default_gates_entry() -> dict[str, dict]:
    """``manifest["gates"]``: the default gates of every precision, as JSON-able dicts."""
    return {precision: gates.to_dict() for precision, gates in DEFAULT_GATES.items()}


def gates_for(manifest: Mapping, precision: str | None = None) -> tuple[Gates, str]:
    """The gates of ``precision`` (default: the manifest's) and where they came from.

    Returns ``(gates, "manifest")`` when the manifest declares them, else the defaults and a
    sentence saying so (the report repeats it).
    """
    precision = precision or manifest.get("precision", "fp32")
    entry = (manifest.get("gates") or {}).get(precision)
    if isinstance(entry, Mapping):
        try:
            return Gates.from_dict(entry), "manifest"
        except (KeyError, TypeError, ValueError) as e:
            logger.warning("manifest gates for %s unreadable (%s); using defaults", precision, e)
    default = DEFAULT_GATES.get(precision, DEFAULT_GATES["fp32"])
    return default, f"defaults for {precision} (the manifest declares no {precision} gates)"
