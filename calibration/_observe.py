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
from pomexport.export.flavors import add_function, plugin_flavor

log = logging.getLogger(__name__)

BATCH = 8  # rows per ONNX Runtime call while observing


def session(model: ir.Model, folder: Path, extra_outputs: Iterable[str] = ()):
    """A CPU session on the portable flavor of ``model`` (left as it is) with
    ``extra_outputs`` exposed."""
    import onnxruntime as ort

    irm = add_function(plugin_flavor(model))
    wanted = set(extra_outputs)
    present = {v.name for v in irm.graph.outputs}
    for node in irm.graph:
        for value in node.outputs:
            if value.name in wanted and value.name not in present:
                irm.graph.outputs.append(value)
                present.add(value.name)
    missing = wanted - present
    assert not missing, f"activations not in the graph: {sorted(missing)}"
    path = folder / "observe.onnx"
    ir.save(irm, path, external_data="observe.onnx.data")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
