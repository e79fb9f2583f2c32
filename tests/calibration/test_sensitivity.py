"""Sensitivity sweep: per-layer errors, and keeping the worst layer in float helps."""

from __future__ import annotations

import onnx_ir as ir

from pomexport.calibration import sensitivity
from pomexport.calibration.calibrators import activation_range
from pomexport.calibration.capture import CaptureSettings, capture_model
from pomexport.calibration.placement import find_targets
from pomexport.calibration.qdq import quantize_model
from pomexport.models import load_model


def test_keeping_the_most_sensitive_layer_in_float_reduces_the_error(
    artifacts, calibrated_model, tmp_path
):
    from pomexport.calibration._observe import observe

    fp32, _ = artifacts
    graph = ir.load(fp32.onnx_path("plugin"))
    # A mixer projection, an MLP input and the final projection.
    targets, _ = find_targets(graph)
    subset = [targets[0], targets[2], targets[-1]]
    data = capture_model(
        load_model(calibrated_model), CaptureSettings(samples=24, frames=2, steps=2)
    )
    stats = observe(graph, sorted({t.activation for t in subset}), data)
    ranges = {name: activation_range(s, "minmax") for name, s in stats.items()}
    sens = sensitivity.sweep(graph, subset, ranges, data, rows=8)
    assert set(sens) == {t.node for t in subset}
    assert all(0.0 < value < 0.2 for value in sens.values()), sens
    (worst,) = sensitivity.worst(sens, 1)
    feed = next(data.batches(8))
    reference = sensitivity.session(graph, tmp_path).run(list(sensitivity.OUTPUTS), feed)
    everything = quantize_model(graph, subset, ranges, "int8")
    kept = quantize_model(graph, [t for t in subset if t.node != worst], ranges, "int8")
    error_all = sensitivity.output_error(everything, reference, feed, tmp_path)
    error_kept = sensitivity.output_error(kept, reference, feed, tmp_path)
    assert error_kept < error_all
