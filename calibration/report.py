"""The calibration report: per-layer scales, clipped fraction, sensitivity (JSON + text)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pomexport.calibration.calibrators import (
    ActivationRange,
    TensorStats,
    clipped_fraction,
    weight_scales,
)
from pomexport.calibration.placement import QuantTarget

SCHEMA = "pomexport.calibration/1"
REPORT_JSON = "calibration.json"
REPORT_TEXT = "calibration.txt"


@dataclass(frozen=True)
class LayerReport:
    """One GEMM/conv target: its activation's range and encodings, its weight scales."""

    node: str
    op_type: str
    activation: str
    observed_min: float
    observed_max: float
    amax: float
    int8_scale: float
    uint8_scale: float
    uint8_zero_point: int
    clipped_fraction: float
    weight: str
    weight_axis: int
    weight_scale_min: float
    weight_scale_max: float
    sensitivity: float | None = None  # relative output error with only this layer in int8
    quantized: bool = True  # False: kept in float by the sensitivity sweep


@dataclass
class CalibrationReport:
    """Everything a reviewer needs to judge a calibration."""

    method: str
    samples: int
    layers: list[LayerReport]
    excluded: dict[str, str]  # node -> why it stays in float
    accuracy: dict[str, float] = field(default_factory=dict)  # int8 vs fp32 on the set

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "method": self.method,
            "samples": self.samples,
            "quantized_layers": sum(layer.quantized for layer in self.layers),
            "layers": [asdict(layer) for layer in self.layers],
            "excluded": self.excluded,
            "accuracy": self.accuracy,
        }

    def to_text(self) -> str:
        lines = [
            f"calibration: {self.method} on {self.samples} step rows; "
            f"{sum(x.quantized for x in self.layers)} GEMM/conv layers in int8, "
            f"{len(self.excluded) + sum(not x.quantized for x in self.layers)} in float",
        ]
        lines += [f"  {k}: {v:.4g}" for k, v in self.accuracy.items()]
        lines.append(
            f"{'node':<28} {'op':<6} {'amax':>8} {'int8 scale':>11} {'clipped':>9} "
            f"{'w scale (min..max)':>21} {'sens.':>8}"
        )
        for x in self.layers:
            sens = "-" if x.sensitivity is None else f"{x.sensitivity:.2e}"
            mark = "" if x.quantized else "  (kept float)"
            lines.append(
                f"{x.node:<28} {x.op_type:<6} {x.amax:8.4g} {x.int8_scale:11.4g} "
                f"{x.clipped_fraction:9.2e} {x.weight_scale_min:9.3g}..{x.weight_scale_max:<10.3g}"
                f" {sens:>8}{mark}"
            )
        lines.append("excluded (float):")
        lines += [f"  {node}: {why}" for node, why in self.excluded.items()]
        return "\n".join(lines) + "\n"


def layer_report(
    target: QuantTarget, weight, stats: TensorStats, calibrated: ActivationRange
) -> LayerReport:
    """The report row of one target (``weight``: its fp32 array)."""
    scales = weight_scales(weight, target.axis)
    uint8_scale, zero = calibrated.uint8()
    return LayerReport(
        node=target.node,
        op_type=target.op_type,
        activation=target.activation,
        observed_min=stats.lo,
        observed_max=stats.hi,
        amax=calibrated.amax,
        int8_scale=calibrated.int8_scale,
        uint8_scale=uint8_scale,
        uint8_zero_point=zero,
        clipped_fraction=clipped_fraction(stats, calibrated.amax),
        weight=target.weight,
        weight_axis=target.axis,
        weight_scale_min=float(scales.min()),
        weight_scale_max=float(scales.max()),
    )
