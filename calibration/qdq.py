"""Explicit quantization of the step graph: Q/DQ insertion as two onnx-ir passes.

- :class:`QuantizeWeightsPass`: each target's weight becomes an int8 initializer (per output
  channel, symmetric) read through ``DequantizeLinear(axis=c)``: the form TensorRT folds into
  its int8 GEMM/conv kernels and ONNX Runtime fuses (``MatMulIntegerToFloat``).
- :class:`QuantizeActivationsPass`: each target's activation input goes through one
  ``QuantizeLinear -> DequantizeLinear`` pair (per tensor, shared by every target reading the
  same value); only the targets read the dequantized value, every other consumer keeps the
  float one.

``encoding`` picks the activation type: ``"int8"`` (TensorRT: symmetric, zero point 0) or
``"uint8"`` (ONNX Runtime x86 CPU: asymmetric). Weights are int8 in both.
Precondition: fp32 step graph, targets from :func:`pomexport.calibration.placement.find_targets`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import onnx_ir as ir

from pomexport.calibration.calibrators import ActivationRange, quantize_weight, weight_scales
from pomexport.calibration.placement import QuantTarget

log = logging.getLogger(__name__)

ENCODINGS = ("int8", "uint8")


def _constant(graph: ir.Graph, name: str, array: np.ndarray) -> ir.Value:
    """Register ``array`` as an initializer named ``name``."""
    array = np.array(array, order="C")  # not ascontiguousarray: it makes scalars 1-D
    dtype = ir.DataType.from_numpy(array.dtype)
    value = ir.Value(name=name, shape=ir.Shape(array.shape), type=ir.TensorType(dtype))
    value.const_value = ir.Tensor(array, name=name)
    graph.register_initializer(value)
    return value


def _nodes_by_name(graph: ir.Graph) -> dict[str, ir.Node]:
    return {node.name: node for node in graph}


class QuantizeWeightsPass(ir.passes.InPlacePass):
    """int8 per-channel weights + ``DequantizeLinear`` for every target (module docstring)."""

    def __init__(self, targets: Sequence[QuantTarget]) -> None:
        super().__init__()
        self.targets = list(targets)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        nodes = _nodes_by_name(graph)
        for target in self.targets:
            node = nodes[target.node]
            weight = node.inputs[1]
            array = weight.const_value.numpy().astype(np.float32)
            scales = weight_scales(array, target.axis)
            base = f"{target.weight}_{target.node}"
            q = _constant(graph, f"{base}_int8", quantize_weight(array, scales, target.axis))
            scale = _constant(graph, f"{base}_scale", scales)
            zero = _constant(graph, f"{base}_zero_point", np.zeros(scales.shape, np.int8))
            dq = ir.node(
                "DequantizeLinear", [q, scale, zero], {"axis": target.axis}, name=f"{base}_dq"
            )
            dq.outputs[0].name = f"{base}_dequantized"
            dq.outputs[0].dtype, dq.outputs[0].shape = ir.DataType.FLOAT, weight.shape
            graph.insert_before(node, dq)
            node.replace_input_with(1, dq.outputs[0])
            if not weight.uses() and not weight.is_graph_output():
                del graph.initializers[weight.name]
        log.info("quantized %d weights (int8, per channel)", len(self.targets))
        return ir.passes.PassResult(model, modified=bool(self.targets))


class QuantizeActivationsPass(ir.passes.InPlacePass):
    """Per-tensor ``QuantizeLinear -> DequantizeLinear`` on every target's activation input."""

    def __init__(
        self,
        targets: Sequence[QuantTarget],
        ranges: Mapping[str, ActivationRange],
        encoding: str = "int8",
    ) -> None:
        super().__init__()
        assert encoding in ENCODINGS, encoding
        self.targets, self.ranges, self.encoding = list(targets), ranges, encoding

    def _scale_zero(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        calibrated = self.ranges[name]
        if self.encoding == "int8":
            return np.float32(calibrated.int8_scale), np.int8(0)
        scale, zero = calibrated.uint8()
        return np.float32(scale), np.uint8(zero)

    def _pair(self, graph: ir.Graph, value: ir.Value, before: ir.Node) -> ir.Value:
        scale, zero = self._scale_zero(value.name)
        s = _constant(graph, f"{value.name}_act_scale", np.array(scale))
        z = _constant(graph, f"{value.name}_act_zero_point", np.array(zero))
        q = ir.node("QuantizeLinear", [value, s, z], name=f"{value.name}_q")
        dq = ir.node("DequantizeLinear", [q.outputs[0], s, z], name=f"{value.name}_dq")
        q.outputs[0].name, dq.outputs[0].name = f"{value.name}_quantized", f"{value.name}_dq"
        q.outputs[0].dtype = ir.DataType.from_numpy(zero.dtype)
        dq.outputs[0].dtype = ir.DataType.FLOAT
        q.outputs[0].shape = dq.outputs[0].shape = value.shape
        graph.insert_before(before, [q, dq])
        return dq.outputs[0]

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        wanted = {t.node for t in self.targets}
        made: dict[str, ir.Value] = {}
        for node in list(graph):  # graph order: a pair precedes all of its readers
            if node.name not in wanted:
                continue
            value = node.inputs[0]
            if value.name not in made:
                made[value.name] = self._pair(graph, value, node)
            node.replace_input_with(0, made[value.name])
        log.info("%d activation Q/DQ pairs (%s)", len(made), self.encoding)
        return ir.passes.PassResult(model, modified=bool(made))


def quantize_model(
    model: ir.Model,
    targets: Sequence[QuantTarget],
    ranges: Mapping[str, ActivationRange],
    encoding: str,
) -> ir.Model:
    """A Q/DQ copy of the fp32 step graph ``model`` (which is left unchanged; the copy
    shares the weights it does not quantize)."""
    _ensure_opset(model, 13)  # per-axis DequantizeLinear needs opset 13
    passes = ir.passes.Sequential(
        QuantizeWeightsPass(targets), QuantizeActivationsPass(targets, ranges, encoding)
    )
    return passes(model.clone()).model


def _ensure_opset(model: ir.Model, minimum: int) -> None:
    for domain, version in model.opset_imports.items():
        if domain in ("", "ai.onnx") and version < minimum:
            raise ValueError(f"opset {version} < {minimum}: Q/DQ with axis needs opset 13")
