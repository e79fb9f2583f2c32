"""Per-layer sensitivity: how much each GEMM/conv alone in int8 perturbs the step's outputs.

For every target, a graph with only that layer quantized (TensorRT encoding) runs on a few
calibration rows; its sensitivity is the larger of the relative L2 errors of ``v`` and
``state_out`` against the fp32 graph. The ``keep`` worst layers stay in float.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx_ir as ir

from pomexport.calibration._observe import session
from pomexport.calibration.calibrators import ActivationRange
from pomexport.calibration.capture import CalibrationSet
from pomexport.calibration.placement import QuantTarget
from pomexport.calibration.qdq import quantize_model

log = logging.getLogger(__name__)

ROWS = 16  # calibration rows per sensitivity evaluation
OUTPUTS = ("v", "state_out")


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """||got - want|| / ||want|| (0 when both are zero)."""
    scale = float(np.linalg.norm(want))
    diff = float(np.linalg.norm(got.astype(np.float64) - want))
    return diff / scale if scale > 0 else diff


def output_error(
    model: ir.Model, reference: Sequence[np.ndarray], feed: dict, folder: Path
) -> float:
    """Largest relative error of ``model``'s outputs on ``feed`` against ``reference``."""
    outputs = session(model, folder).run(list(OUTPUTS), feed)
    return max(relative_error(g, w) for g, w in zip(outputs, reference, strict=True))


def sweep(
    model: ir.Model,
    targets: Sequence[QuantTarget],
    ranges: Mapping[str, ActivationRange],
    data: CalibrationSet,
    rows: int = ROWS,
) -> dict[str, float]:
    """Sensitivity of every target (node name -> relative output error)."""
    feed = next(data.batches(rows))
    result = {}
    with tempfile.TemporaryDirectory(prefix="pomexport-sens-") as tmp:
        folder = Path(tmp)
        reference = session(model, folder).run(list(OUTPUTS), feed)
        for target in targets:
            single = quantize_model(model, [target], ranges, "int8")
            result[target.node] = output_error(single, reference, feed, folder)
    log.info("sensitivity sweep over %d layers", len(result))
    return result


def worst(sensitivity: Mapping[str, float], keep: int) -> set[str]:
    """The ``keep`` most sensitive layers (kept in float)."""
    ranked = sorted(sensitivity, key=sensitivity.get, reverse=True)
    return set(ranked[: max(keep, 0)])
