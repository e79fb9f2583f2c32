"""A read-only, typed view of an ONNX graph as TensorRT sees it (for the lint and inspect).

Local functions are inlined (TensorRT's parser inlines them too), big weights are left out
(only their dtype and dims matter here), and shape inference fills in every tensor's dtype and
shape. The view answers: a tensor's dtype/shape, its producer and consumers, whether it is a
build-time constant, and a node's ONNX schema.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import onnx
import onnx.inliner
import onnx.shape_inference
from onnx import TensorProto, defs

log = logging.getLogger(__name__)

# Weights above this many elements are replaced by a data-less placeholder before inference.
_KEEP_ELEMENTS = 4096
_DYNAMIC_SOURCES = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike"}


def dtype_name(elem_type: int) -> str:
    """ONNX element type -> the names the op table uses (``1`` -> ``"float32"``)."""
    name = TensorProto.DataType.Name(elem_type).lower()
    return {"float": "float32", "double": "float64"}.get(name, name)


def _register_polymixer_schema() -> None:
    """Shape inference understands PolyMixer nodes once the schema is registered."""
    try:
        from pomexport.export.schema import register_schema
    except ImportError:  # the exporter's schema module is optional for the lint
        return
    register_schema()


def light_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without the payload of big initializers (dtype and dims kept)."""
    light = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph, out = model.graph, light.graph
    out.name = graph.name
    for part in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(out, part).extend(getattr(graph, part))
    for tensor in graph.initializer:
        numel = 1
        for d in tensor.dims:
            numel *= d
        if numel <= _KEEP_ELEMENTS and tensor.data_location != TensorProto.EXTERNAL:
            out.initializer.append(tensor)
        else:
            stub = out.initializer.add(name=tensor.name, data_type=tensor.data_type)
            stub.dims.extend(tensor.dims)
    return light


def _typed(model: onnx.ModelProto) -> onnx.ModelProto:
    """Inline local functions, then infer types and shapes (best effort, never raises)."""
    _register_polymixer_schema()
    light = light_copy(model)
    try:
        light = onnx.inliner.inline_local_functions(light)
    except Exception as e:  # noqa: BLE001 - a lint must still report on odd graphs
        log.warning("could not inline local functions (%s); checking the outer graph only", e)
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001
        # A stale value_info (declared shape contradicting the op) stops inference: drop the
        # declared intermediates and infer them afresh.
        log.warning("shape inference failed (%s); retrying without the graph's value_info", e)
    del light.graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception as e:  # noqa: BLE001
        log.warning("shape inference failed again (%s); dtypes limited to declared ones", e)
        return light


def all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Nodes of ``graph`` and of every subgraph (If/Loop/Scan bodies), outer first."""
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                nodes += all_nodes(sub)
    return nodes


def _value_infos(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    infos = [*graph.input, *graph.output, *graph.value_info]
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                infos += _value_infos(sub)
    return infos


@dataclass
class GraphView:
    """Typed, indexed view of a (function-inlined) model; build it with :meth:`build`."""

    model: onnx.ModelProto
    nodes: list[onnx.NodeProto]
    types: dict[str, onnx.TypeProto] = field(default_factory=dict)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=lambda: defaultdict(list))
    constants: set[str] = field(default_factory=set)
    opsets: dict[str, int] = field(default_factory=dict)
    _names: dict[int, str] = field(default_factory=dict)

    @classmethod
    def build(cls, model: onnx.ModelProto) -> GraphView:
        """Index ``model`` (unchanged) as TensorRT will see it."""
        typed = _typed(model)
        view = cls(typed, all_nodes(typed.graph))
        view.opsets = {o.domain or "": o.version for o in typed.opset_import}
        view._index()
        return view

    def _index(self) -> None:
        graph = self.model.graph
        for info in _value_infos(graph):
            self.types[info.name] = info.type
        graph_inputs = {i.name for i in graph.input}
        for tensor in graph.initializer:
            t = onnx.TypeProto()
            t.tensor_type.elem_type = tensor.data_type
            for d in tensor.dims:
                t.tensor_type.shape.dim.add().dim_value = d
            self.types.setdefault(tensor.name, t)
            if tensor.name not in graph_inputs:
                self.constants.add(tensor.name)
        for index, node in enumerate(self.nodes):
            self._names[id(node)] = node.name or f"{node.op_type}_{index}"
            for name in node.output:
                self.producer[name] = node
            for name in node.input:
                self.consumers[name].append(node)
        for node in self.nodes:  # nodes are in topological order (ONNX requires it)
            if self._foldable(node):
                self.constants.update(o for o in node.output if o)

    def _foldable(self, node: onnx.NodeProto) -> bool:
        if node.op_type in ("Constant", "ConstantOfShape") and all(
            n in self.constants for n in node.input if n
        ):
            return True
        if node.op_type in ("Shape", "Size"):
            shape = self.shape(node.input[0])
            if shape is not None and node.op_type == "Shape":  # only the selected dims count
                attrs = {a.name: a.i for a in node.attribute}
                shape = shape[attrs.get("start", 0) : attrs.get("end", len(shape))]
            return shape is not None and all(isinstance(d, int) for d in shape)
        inputs = [n for n in node.input if n]
        return (
            bool(inputs)
            and node.op_type not in _DYNAMIC_SOURCES
            and all(n in self.constants for n in inputs)
        )

    def name(self, node: onnx.NodeProto) -> str:
        """The node's name, or ``<op>_<index>`` when it has none."""
        return self._names.get(id(node), node.name or node.op_type)

    def dtype(self, tensor: str) -> str | None:
        """``"float16"``, ``"int64"``... or None when unknown."""
        t = self.types.get(tensor)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.elem_type:
            return None
        return dtype_name(t.tensor_type.elem_type)

    def shape(self, tensor: str) -> list[int | str] | None:
        """Dims (ints, or the symbol/``"?"`` for unknown ones), or None when the rank is unknown."""
        t = self.types.get(tensor)
        if t is None or not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        return [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in t.tensor_type.shape.dim
        ]

    def is_constant(self, tensor: str) -> bool:
        """True for initializers, Constant outputs and anything computed only from them."""
        return tensor in self.constants

    def schema(self, node: onnx.NodeProto) -> defs.OpSchema | None:
        """The node's ONNX schema at the model's opset, or None for unknown ops."""
        domain = "" if node.domain == "ai.onnx" else node.domain
        try:
            return defs.get_schema(node.op_type, self.opsets.get(domain, 1), domain)
        except defs.SchemaError:
            return None

    def named_input(self, node: onnx.NodeProto, formal: str) -> str | None:
        """The tensor bound to the schema input called ``formal`` (e.g. ``"axes"``), if any."""
        schema = self.schema(node)
        if schema is None:
            return None
        for index, param in enumerate(schema.inputs):
            if param.name == formal and index < len(node.input) and node.input[index]:
                return node.input[index]
        return None
