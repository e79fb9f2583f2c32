"""Run the fp32 step graph in ONNX Runtime and observe the activations to be quantized."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx_ir as ir

from pomexport.calibration.calibrators import TensorStats
from pomexport.calibration.capture import CalibrationSet
from pomexport.export.probe import cpu_session, with_outputs

log = logging.getLogger(__name__)

BATCH = 8  # rows per ONNX Runtime call while observing


def session(model: ir.Model, folder: Path, extra_outputs: Iterable[str] = ()):
    """A CPU session on the portable flavor of ``model`` (left as it is) with
    ``extra_outputs`` exposed."""
    wanted = set(extra_outputs)
    irm = with_outputs(model, lambda value: value.name in wanted)
    missing = wanted - {v.name for v in irm.graph.outputs}
    assert not missing, f"activations not in the graph: {sorted(missing)}"
    return cpu_session(irm, folder, "observe", _quiet)


def _quiet(options) -> None:
    options.log_severity_level = 3


def _sweep(sess, names: list[str], data: CalibrationSet, visit: Callable) -> None:
    for feed in data.batches(BATCH):
        for name, value in zip(names, sess.run(names, feed), strict=True):
            visit(name, value)


def observe(model: ir.Model, names: list[str], data: CalibrationSet) -> dict[str, TensorStats]:
    """Range and |x| histogram of each named activation over the calibration set (2 passes)."""
    stats = {name: TensorStats() for name in names}
    with tempfile.TemporaryDirectory(prefix="pomexport-calib-") as tmp:
        sess = session(model, Path(tmp), names)
        _sweep(sess, names, data, lambda n, v: stats[n].observe_range(v))
        _sweep(sess, names, data, lambda n, v: stats[n].observe_histogram(v))
    bad = [n for n, s in stats.items() if not np.isfinite(s.absmax)]
    if bad:
        from pomexport.errors import ExportError

        raise ExportError(f"non-finite activations on the calibration set: {bad[:5]}")
    log.info("observed %d activations over %d rows", len(names), len(data))
    return stats
