"""fp16 with the precision baked into the graph (docs/design.md §4), as an onnx-ir pass.

GEMMs, convolutions and elementwise ops run in fp16. Kept in fp32, with explicit Casts at
the borders:

- LayerNormalization (its statistics);
- the timestep and frame sinusoid embeddings: everything computed from ``t`` and
  ``frame_index`` up to the first MatMul/Gemm/Conv;
- the PolyMixer state path: ``state``/``count`` up to the PolyMixer nodes and
  ``state_out`` back to them; the node itself takes ``h``/``g`` in fp16 and its
  state/count/coeff in fp32 (and accumulates in fp32 inside);
- every node producing or consuming a tensor named in ``keep_fp32`` (the overflow check,
  :mod:`pomexport.export.ranges`, names those whose |max| exceeds half the fp16 range); a
  PolyMixer touching one then takes ``h``/``g`` and gives ``y`` in fp32 as well.

Graph I/O follows the contract: ``x_t``/``v`` fp16, ``t``/``state``/``count``/``state_out``
fp32. Weights feeding fp16 nodes are stored in fp16 (casts of constants are folded).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import onnx_ir as ir

from pomexport.export.artifact.contract import DOMAIN, OP_TYPE

log = logging.getLogger(__name__)

F32, F16 = ir.DataType.FLOAT, ir.DataType.FLOAT16
_FLOATS = (F32, F16)
FP32_OPS = frozenset({"LayerNormalization"})
_SOURCE_OPS = frozenset({"Constant", "ConstantOfShape", "EyeLike", "RandomNormal", "RandomUniform"})
_STOP_OPS = frozenset({"MatMul", "Gemm", "Conv"})  # fp32 islands end at the first GEMM/conv
FP32_INPUTS = ("t", "frame_index", "state", "count")
MODEL_DTYPE_IO = ("x_t", "v", "text_emb")
# PolyMixer input slots that stay fp32 (state, count, coeff); h and g follow the model.
_MIXER_FP32_SLOTS = frozenset({2, 3, 4})


def is_mixer(node: ir.Node) -> bool:
    return node.domain == DOMAIN and node.op_type == OP_TYPE


def _forward_island(graph: ir.Graph, names: Iterable[str]) -> set[ir.Node]:
    """Nodes reachable from the named graph inputs without crossing a GEMM/conv/PolyMixer."""
    found: set[ir.Node] = set()
    stack = [v for v in graph.inputs if v.name in set(names)]
    while stack:
        for use in stack.pop().uses():
            node = use.node
            if node in found or node.op_type in _STOP_OPS or is_mixer(node):
                continue
            found.add(node)
            stack.extend(node.outputs)
    return found


def _backward_island(graph: ir.Graph, name: str) -> set[ir.Node]:
    """Producers of the named output back to (excluding) the PolyMixer nodes."""
    found: set[ir.Node] = set()
    stack = [v for v in graph.outputs if v.name == name]
    while stack:
        node = stack.pop().producer()
        if node is None or node in found or is_mixer(node):
            continue
        found.add(node)
        stack.extend(v for v in node.inputs if v is not None)
    return found


def fp32_nodes(graph: ir.Graph, keep_fp32: Iterable[str] = ()) -> set[ir.Node]:
    """Every node that computes in fp32 (see the module docstring)."""
    nodes = {n for n in graph if n.op_type in FP32_OPS}
    nodes |= _forward_island(graph, FP32_INPUTS)
    nodes |= _backward_island(graph, "state_out")
    keep = set(keep_fp32)
    for node in graph:
        values = [v for v in (*node.inputs, *node.outputs) if v is not None]
        if any(v.name in keep for v in values):
            nodes.add(node)
    return nodes


def _wanted(node: ir.Node, slot: int, fp32: set[ir.Node]) -> ir.DataType:
    if is_mixer(node) and node not in fp32:
        return F32 if slot in _MIXER_FP32_SLOTS else F16
    return F32 if node in fp32 else F16


class _Casts:
    """Inserts (and reuses) one Cast per (value, dtype) right after the value's producer."""

    def __init__(self, graph: ir.Graph) -> None:
        self.graph = graph
        self.made: dict[tuple[int, ir.DataType], ir.Value] = {}
        self.count = 0

    def to(self, value: ir.Value, dtype: ir.DataType, before: ir.Node) -> ir.Value:
        key = (id(value), dtype)
        if key not in self.made:
            cast = ir.node("Cast", [value], {"to": dtype}, name=f"{value.name}_to_{dtype.name}")
            out = cast.outputs[0]
            out.name = f"{value.name}_{dtype.name.lower()}"
            out.dtype, out.shape = dtype, value.shape
            self.graph.insert_before(before, cast)
            self.made[key] = out
            self.count += 1
        return self.made[key]


def _retype_node(node: ir.Node, fp32: set[ir.Node]) -> None:
    """Set the float outputs' dtype (and a Cast's ``to``) for the node's compute precision."""
    if is_mixer(node):  # y follows h (fp32 only when the overflow check says so)
        node.outputs[0].dtype = F32 if node in fp32 else F16
        node.outputs[1].dtype = F32
        return
    if node.op_type in _SOURCE_OPS:
        return  # their dtype is in an attribute: consumers get a Cast instead
    dtype = F32 if node in fp32 else F16
    if node.op_type == "Cast":
        if ir.DataType(node.attributes["to"].value) in _FLOATS:
            node.attributes["to"] = ir.AttrInt64("to", dtype.value)
    for out in node.outputs:
        if out.dtype in _FLOATS:
            out.dtype = dtype


def _convert_inputs(graph: ir.Graph, fp32: set[ir.Node], casts: _Casts) -> None:
    for node in list(graph):
        for slot, value in enumerate(node.inputs):
            if value is None or value.dtype not in _FLOATS or node.op_type == "Cast":
                continue
            wanted = _wanted(node, slot, fp32)
            if value.dtype != wanted:
                node.replace_input_with(slot, casts.to(value, wanted, node))
        _retype_node(node, fp32)


def _fix_outputs(graph: ir.Graph, casts: _Casts) -> None:
    """Graph outputs keep their contract dtype: v in fp16, state_out in fp32."""
    for i, out in enumerate(list(graph.outputs)):
        wanted = F16 if out.name in MODEL_DTYPE_IO else F32
        if out.dtype in _FLOATS and out.dtype != wanted:
            node = ir.node("Cast", [out], {"to": wanted})
            graph.append(node)
            new = node.outputs[0]
            new.dtype, new.shape = wanted, out.shape
            name = out.name
            out.name = f"{name}_{out.dtype.name.lower()}"
            new.name = name
            graph.outputs[i] = new
            casts.count += 1


def fold_constant_casts(graph: ir.Graph) -> int:
    """Replace ``Cast(initializer)`` by an initializer of the cast type; drop dead weights."""
    folded = 0
    for node in list(graph):
        source = node.inputs[0] if node.op_type == "Cast" and node.inputs else None
        if source is None or not source.is_initializer() or source.const_value is None:
            continue
        out = node.outputs[0]
        array = source.const_value.numpy().astype(ir.DataType(out.dtype).numpy())
        shape = ir.Shape(array.shape)
        value = ir.Value(name=out.name, shape=shape, type=ir.TensorType(out.dtype))
        value.const_value = ir.Tensor(array, name=out.name)  # astype made a copy
        graph.register_initializer(value)
        out.replace_all_uses_with(value, replace_graph_outputs=True)
        graph.remove(node, safe=True)
        folded += 1
    for name, value in list(graph.initializers.items()):
        if not value.uses() and not value.is_graph_output():
            del graph.initializers[name]
    return folded


class Fp16Pass(ir.passes.InPlacePass):
    """Convert an fp32 step graph to the fp16 precision plan of the module docstring.

    Precondition: the graph is the fp32 step graph (contract I/O, float32 throughout).
    """

    def __init__(self, keep_fp32: Iterable[str] = ()) -> None:
        super().__init__()
        self.keep_fp32 = frozenset(keep_fp32)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        fp32 = fp32_nodes(graph, self.keep_fp32)
        for value in graph.inputs:
            if value.name in MODEL_DTYPE_IO and value.dtype == F32:
                value.dtype = F16
        casts = _Casts(graph)
        _convert_inputs(graph, fp32, casts)
        _fix_outputs(graph, casts)
        folded = fold_constant_casts(graph)
        log.info("fp16: %d fp32 nodes, %d casts, %d weights folded", len(fp32), casts.count, folded)
        return ir.passes.PassResult(model, modified=True)


def to_fp16(model, keep_fp32: Iterable[str] = ()):
    """An fp32 step graph in fp16: an ``ir.Model`` is converted in place and returned.

    A graph held as an ``onnx.ModelProto`` (the decoders' export) gets an fp16 proto copy.
    """
    if isinstance(model, ir.Model):
        return Fp16Pass(keep_fp32)(model).model
    irm = ir.serde.deserialize_model(model)
    Fp16Pass(keep_fp32)(irm)
    return ir.serde.serialize_model(irm)
