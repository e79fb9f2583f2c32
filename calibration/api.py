"""INT8 artifacts: calibrate on real trajectories, write the Q/DQ graphs and the report.

fp32 artifact (export_model, both flavors)
-> capture the sampler's step inputs (torch model, VideoGenerator)   capture.py
-> observe the GEMM/conv activations in ONNX Runtime (2 passes)      _observe.py
-> ranges (minmax | percentile | entropy), optional sensitivity sweep
-> model.onnx / model.plugin.onnx: symmetric int8 Q/DQ (TensorRT)
   model.ort-cpu.onnx: uint8 activations, int8 weights (ONNX Runtime x86 CPU, portable)
-> calibration.json + calibration.txt + calibration-set.npz, through an artifact draft
   (export/artifact/edit.py): the build's, or an in-place edit committed once
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import onnx_ir as ir

from pomexport.calibration.calibrators import activation_range, check_method
from pomexport.calibration.capture import CalibrationSet, CaptureSettings, capture_model
from pomexport.calibration.placement import QuantTarget, find_targets
from pomexport.calibration.report import REPORT_JSON, REPORT_TEXT, CalibrationReport, layer_report
from pomexport.errors import ConfigError
from pomexport.export.artifact import Artifact, ArtifactDraft, edit_artifact, load_artifact
from pomexport.export.onnx_files import save_onnx

log = logging.getLogger(__name__)

ORT_CPU = "ort-cpu"  # manifest flavor of the ONNX Runtime CPU encoding
ORT_CPU_FILE = "model.ort-cpu.onnx"
CALIBRATION_SET = "calibration-set.npz"  # the captured step inputs the scales came from
Progress = Callable[[str], None]


@dataclass(frozen=True)
class CalibrationOptions:
    """How to calibrate. ``keep_float`` > 0 runs the sensitivity sweep and keeps that many
    of the worst layers in float; ``sweep`` runs it for the report only."""

    method: str = "percentile"
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    keep_float: int = 0
    sweep: bool = False
    calibration_set: str | None = None  # an .npz to use instead of capturing
    save_set: str | None = None  # where to also write the captured set

    def __post_init__(self) -> None:
        check_method(self.method)
        if self.keep_float < 0:
            raise ConfigError(f"keep_float must be >= 0, got {self.keep_float}")


@dataclass(frozen=True)
class QuantizedGraphs:
    """The two encodings of one calibration (plugin flavor: no local function) + report."""

    tensorrt: ir.Model
    ort_cpu: ir.Model
    report: CalibrationReport


def _weights(model: ir.Model, targets: list[QuantTarget]) -> dict:
    initializers = model.graph.initializers
    return {name: initializers[name].const_value.numpy() for name in {t.weight for t in targets}}


def _accuracy(fp32: ir.Model, graphs: dict[str, ir.Model], data: CalibrationSet) -> dict:
    from pomexport.calibration._observe import session
    from pomexport.calibration.sensitivity import OUTPUTS, ROWS, relative_error

    feed = next(data.batches(ROWS))
    result = {}
    with tempfile.TemporaryDirectory(prefix="pomexport-acc-") as tmp:
        reference = session(fp32, Path(tmp)).run(list(OUTPUTS), feed)
        for label, graph in graphs.items():
            outputs = session(graph, Path(tmp)).run(list(OUTPUTS), feed)
            for name, got, want in zip(OUTPUTS, outputs, reference, strict=True):
                result[f"{label}_{name}_rel_error"] = relative_error(got, want)
    return result


def quantize_graph(
    fp32: ir.Model, data: CalibrationSet, options: CalibrationOptions
) -> QuantizedGraphs:
    """Calibrate the fp32 step graph (plugin flavor) on ``data``; both encodings + report."""
    from pomexport.calibration import sensitivity
    from pomexport.calibration._observe import observe
    from pomexport.calibration.qdq import quantize_model

    targets, excluded = find_targets(fp32)
    stats = observe(fp32, sorted({t.activation for t in targets}), data)
    ranges = {name: activation_range(s, options.method) for name, s in stats.items()}
    weights = _weights(fp32, targets)
    layers = {
        t.node: layer_report(t, weights[t.weight], stats[t.activation], ranges[t.activation])
        for t in targets
    }
    keep: set[str] = set()
    if options.sweep or options.keep_float:
        sens = sensitivity.sweep(fp32, targets, ranges, data)
        keep = sensitivity.worst(sens, options.keep_float)
        for node, value in sens.items():
            layers[node] = replace(layers[node], sensitivity=value, quantized=node not in keep)
    chosen = [t for t in targets if t.node not in keep]
    trt = quantize_model(fp32, chosen, ranges, "int8")
    cpu = quantize_model(fp32, chosen, ranges, "uint8")
    report = CalibrationReport(options.method, len(data), list(layers.values()), excluded)
    report.accuracy = _accuracy(fp32, {"int8": trt, "uint8": cpu}, data)
    return QuantizedGraphs(trt, cpu, report)


def calibration_data(model, options: CalibrationOptions) -> CalibrationSet:
    """The calibration set: loaded from ``options.calibration_set`` or captured now."""
    if options.calibration_set:
        data = CalibrationSet.load(options.calibration_set)
        _check_shapes(data, model.cfg, options.calibration_set)
    else:
        data = capture_model(model, options.capture)
    if options.save_set:
        data.save(options.save_set)
    return data


def _check_shapes(data: CalibrationSet, cfg, where) -> None:
    want = {
        "x_t": (cfg.in_channels, cfg.input_size, cfg.input_size),
        "state": (cfg.depth, cfg.state_width),
    }
    got = {"x_t": data.feeds["x_t"].shape[1:], "state": data.feeds["state"].shape[::2]}
    if got != want:
        raise ConfigError(f"{where}: calibration set of another model ({got} vs {want})")


def _write_graphs(draft: ArtifactDraft, flavors: dict, graphs: QuantizedGraphs) -> None:
    import json

    from pomexport.export.flavors import add_function, plugin_flavor

    for flavor, name in flavors.items():
        graph = plugin_flavor(graphs.tensorrt)
        save_onnx(add_function(graph) if flavor == "portable" else graph, draft.target(name))
    save_onnx(add_function(plugin_flavor(graphs.ort_cpu)), draft.target(ORT_CPU_FILE))
    draft.target(REPORT_TEXT).write_text(graphs.report.to_text())
    report = json.dumps(graphs.report.to_dict(), indent=2) + "\n"
    draft.target(REPORT_JSON).write_text(report)


def quantize_artifact(
    root: str | os.PathLike | ArtifactDraft,
    model,
    options: CalibrationOptions | None = None,
    progress: Progress | None = None,
) -> Artifact | ArtifactDraft:
    """Turn the fp32 artifact at ``root`` into the int8 artifact, in place.

    ``model``: the same model as a ``PoMDiT`` (or name) — the sampler runs it to capture
    calibration data. Returns the reloaded artifact. ``root`` may be the
    :class:`ArtifactDraft` of a build: the int8 files go into it and the draft is returned,
    uncommitted (its owner commits once).
    """
    options = options or CalibrationOptions()
    progress = progress or (lambda message: log.info("%s", message))
    with edit_artifact(root) as draft:
        _quantize_draft(draft, model, options, progress)
    if isinstance(root, ArtifactDraft):
        return root
    # written and hashed by this call, moments ago: no signature to ask of it (signing.py)
    return load_artifact(root, verify=False, trusted=())


def _quantize_draft(
    draft: ArtifactDraft, model, options: CalibrationOptions, progress: Progress
) -> None:
    """Calibrate the draft's fp32 graph; write both encodings, the report and the set."""
    from pomexport.export.api import resolve_model
    from pomexport.export.flavors import to_plugin_flavor

    manifest = draft.manifest
    if manifest["precision"] != "fp32":
        raise ConfigError(
            f"{draft.root}: int8 calibration starts from an fp32 artifact, not "
            f"{manifest['precision']}"
        )
    flavors = dict(manifest["flavors"])
    flavor = "plugin" if "plugin" in flavors else "portable"
    fp32 = ir.load(draft / flavors[flavor])
    ir.external_data.load_to_model(fp32)  # in memory: the int8 files replace its .data
    to_plugin_flavor(fp32)
    torch_model, _ = resolve_model(model)
    progress(f"capturing calibration data ({options.capture.samples} step rows max)")
    data = calibration_data(torch_model, options)
    progress(f"calibrating ({options.method}) on {len(data)} rows and inserting Q/DQ")
    graphs = quantize_graph(fp32, data, options)
    _write_graphs(draft, flavors, graphs)
    data.save(draft.target(CALIBRATION_SET))  # provenance: re-calibrate or re-check later
    manifest["precision"] = "int8"
    manifest["flavors"] = {**flavors, ORT_CPU: ORT_CPU_FILE}
    manifest["quantization"] = _summary(graphs.report, options)
    progress("int8: " + ", ".join(f"{k} {v:.3g}" for k, v in graphs.report.accuracy.items()))


def _summary(report: CalibrationReport, options: CalibrationOptions) -> dict:
    return {
        "method": report.method,
        "samples": report.samples,
        "weights": "int8 symmetric per output channel",
        "activations": {
            "portable": "int8 symmetric per tensor (TensorRT)",
            "plugin": "int8 symmetric per tensor (TensorRT)",
            ORT_CPU: "uint8 asymmetric per tensor (ONNX Runtime x86 CPU)",
        },
        "quantized_layers": sum(layer.quantized for layer in report.layers),
        "float_layers": sorted(report.excluded)
        + sorted(x.node for x in report.layers if not x.quantized),
        "report": [REPORT_JSON, REPORT_TEXT],
        "calibration_set": CALIBRATION_SET,
    }
