"""Accuracy gates: the tolerances an artifact must meet against its PyTorch reference.

Written into the manifest at export time (``manifest["gates"]``, one entry per precision, so
an artifact that calibration turns into int8 still carries its int8 gates) and read back by
``pomexport verify``; defaults apply when an artifact has none, and the report says so.

Per step (the artifact fed the reference's exact inputs: one step's own error):
  ``v``: max abs, relative (``max|a-r| / max|r|``) and cosine bounds;
  ``state_out``: relative and cosine bounds (the state is a sum of features: its scale grows
  with the frames committed, so an absolute bound would not mean the same at frame 1 and 256).
Per frame (both sides generating on their own from the same noise: accumulated drift):
  ``psnr_min_db``: PSNR of the decoded uint8 frame, every frame.
``layer_rel``: bound used by the layerwise search for the first layer that goes wrong.

How the defaults were chosen (``pomexport verify`` on the tiny model, 2 CPU threads, see the
issue-8 report): fp32 ONNX Runtime vs torch differs by float reordering only (v max abs
~1e-6, decoded frames identical); fp16 steps differ by ~1e-3 relative; the bounds leave about
10x headroom over what was measured and stay tight enough that one perturbed weight fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from pomexport.runtime.compare import Tolerance

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_GATES", "Gates", "default_gates_entry", "gates_for"]


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
        psnr_min_db=30.0,
        layer_rel=3e-2,
    ),
    "int8": Gates(
        v_max_abs=0.5,
        v_rel=0.25,
        state_rel=0.1,
        cosine_min=0.95,
        psnr_min_db=20.0,
        layer_rel=0.3,
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
