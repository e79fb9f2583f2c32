"""Graph patterns TensorRT accepts but handles poorly (warnings of the TensorRT lint).

Each check takes a :class:`GraphView` and returns findings that hold for every TensorRT
version (``trt_version=None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import onnx

from pomexport.export._lint_graph import GraphView

FLOAT_TYPES = {"float32", "float16", "bfloat16", "float64"}
# op -> index of its shape-like input: a run-time value there makes TensorRT build shape
# tensors, evaluated on the host between kernels, on every call.
_SHAPE_CONSUMERS = {"Reshape": 1, "Expand": 1, "Tile": 1, "ConstantOfShape": 0, "Range": 1}
_INT_ARITHMETIC = {"Add", "Sub", "Mul", "Div", "Mod", "Neg", "Abs", "Max", "Min", "Pow", "CumSum"}
_MAX_CHAIN = 16


@dataclass(frozen=True)
class Finding:
    """One lint result. ``trt_version`` is None for findings that hold for every version."""

    severity: str
    node: str
    op: str
    message: str
    trt_version: str | None = None

    def __str__(self) -> str:
        where = f"[TRT {self.trt_version}] " if self.trt_version else ""
        what = f"{self.node} ({self.op})" if self.op else self.node
        return f"{self.severity.upper()} {where}{what}: {self.message}"


def _shape_paths(view: GraphView) -> dict[str, list[onnx.NodeProto]]:
    """For each run-time tensor computed from a ``Shape`` node: one path Shape -> producer."""
    paths: dict[str, list[onnx.NodeProto]] = {}
    for node in view.nodes:  # topological order
        if node.op_type == "Shape":
            path = [node]
        else:
            found = [paths[n] for n in node.input if n in paths]
            path = [*found[0], node] if found and len(found[0]) < _MAX_CHAIN else None
        if path is None:
            continue
        for out in node.output:
            if out and not view.is_constant(out):
                paths[out] = path
    return paths


def shape_chains(view: GraphView) -> list:
    """Reshape/Expand/Tile/... whose shape is computed from ``Shape`` at run time."""
    findings, paths = [], _shape_paths(view)
    for node in view.nodes:
        index = _SHAPE_CONSUMERS.get(node.op_type)
        if index is None or index >= len(node.input) or not node.input[index]:
            continue
        path = paths.get(node.input[index])
        if path is None:
            continue
        chain = "→".join(n.op_type for n in [*path, node])
        msg = (
            f"int64 shape arithmetic on the hot path ({chain}); export with static shapes or "
            "fold it into a constant where the dim is fixed"
        )
        findings.append(Finding("warning", view.name(node), node.op_type, msg))
    return findings


def int64_arithmetic(view: GraphView) -> list:
    """int64 elementwise math on run-time values (not foldable from constants)."""
    findings, paths = [], _shape_paths(view)
    for node in view.nodes:
        if node.op_type not in _INT_ARITHMETIC or not node.output:
            continue
        if view.dtype(node.output[0]) != "int64" or view.is_constant(node.output[0]):
            continue
        source = "shape" if node.output[0] in paths else "value"
        msg = (
            f"int64 {source} arithmetic on run-time values; TensorRT evaluates it every call "
            "(precompute it on the host, or keep it int32/float)"
        )
        findings.append(Finding("warning", view.name(node), node.op_type, msg))
    return findings


def unbounded_dims(model: onnx.ModelProto, bounds: Mapping[str, tuple[int, int, int]]) -> list:
    """Dynamic input dims need an optimization-profile range (min, opt, max)."""
    findings = []
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                continue
            symbol = dim.dim_param
            if not symbol or symbol not in bounds:
                label = f"{symbol!r}" if symbol else "unnamed"
                msg = f"dynamic dim {axis} ({label}) has no optimization-profile range"
                findings.append(Finding("warning", value.name, "", msg))
                continue
            lo, opt, hi = bounds[symbol]
            if not 1 <= lo <= opt <= hi:
                msg = f"profile range of {symbol!r} is not 1 <= min <= opt <= max: {lo, opt, hi}"
                findings.append(Finding("error", value.name, "", msg))
    return findings


def double_tensors(view: GraphView) -> list:
    """TensorRT casts DOUBLE down to FLOAT (clamping to ±FLT_MAX): flag every float64 tensor."""
    findings = []
    for name in sorted(view.types):
        if view.dtype(name) != "float64":
            continue
        node = view.producer.get(name)
        where = view.name(node) if node is not None else name
        op = node.op_type if node is not None else ""
        msg = f"{name} is float64; TensorRT casts DOUBLE to FLOAT, clamping to ±FLT_MAX"
        findings.append(Finding("warning", where, op, msg))
    return findings


def quantized_outside_qdq(view: GraphView, table: dict) -> list:
    """INT8/INT4/FP8/FP4 only through Q/DQ; UINT8 only at the network's inputs and outputs."""
    quantized = set(table["strongly_typed"]["quantized_types_only_via_qdq"])
    findings = []
    for node in view.nodes:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for name in node.input:
            dtype = view.dtype(name) if name else None
            uint8_misuse = dtype == "uint8" and node.op_type != "Cast"
            if dtype in quantized or uint8_misuse:
                msg = f"input {name} is {dtype} outside Q/DQ; TensorRT supports it only as " + (
                    "a network input/output (Cast it)" if dtype == "uint8" else "Q/DQ data"
                )
                findings.append(Finding("warning", view.name(node), node.op_type, msg))
    return findings
