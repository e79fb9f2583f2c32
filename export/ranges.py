"""The overflow check of the fp16 plan: ranges of every fp32 tensor on real trajectories.

The fp32 step graph runs in ONNX Runtime with every float intermediate made a graph
output; a tensor whose |max| exceeds ``0.5 * 65504`` (half the fp16 range, leaving room for
what the fp16 arithmetic adds) is kept in fp32 by :class:`pomexport.export.fp16.Fp16Pass`.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx_ir as ir

from pomexport.errors import ExportError
from pomexport.export.probe import cpu_session, with_outputs

log = logging.getLogger(__name__)

FP16_MAX = 65504.0
OVERFLOW_FRACTION = 0.5


def _lean(options) -> None:
    import onnxruntime as ort

    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    # Every intermediate is an output: no arena, no prepacked weight copies (memory of XL).
    options.enable_cpu_mem_arena = False
    options.add_session_config_entry("session.disable_prepacking", "1")


def tensor_absmax(model: ir.Model, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """max |x| over all feeds of every float tensor the fp32 graph computes (``model`` is
    left as it is)."""
    irm = with_outputs(model, lambda value: value.dtype == ir.DataType.FLOAT)
    absmax: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pomexport-ranges-") as tmp:
        session = cpu_session(irm, Path(tmp), "ranges", _lean)
        names = [o.name for o in session.get_outputs()]
        for feed in feeds:
            for name, value in zip(names, session.run(names, feed), strict=True):
                if value.size:
                    peak = float(np.max(np.abs(value)))
                    absmax[name] = max(absmax.get(name, 0.0), peak)
    del session, irm
    gc.collect()  # release ONNX Runtime's copy of the weights and the cyclic IR graph now
    if any(not np.isfinite(v) for v in absmax.values()):
        raise ExportError("the fp32 step graph produced non-finite values on the trajectory")
    return absmax


def overflowing(absmax: dict[str, float], fraction: float = OVERFLOW_FRACTION) -> set[str]:
    """Names of the tensors whose |max| exceeds ``fraction`` of the fp16 range."""
    limit = fraction * FP16_MAX
    names = {name for name, peak in absmax.items() if peak > limit}
    if names:
        log.info("fp16 overflow check: %d tensors kept in fp32 (|max| > %g)", len(names), limit)
    return names
