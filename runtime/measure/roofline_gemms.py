"""The GEMMs of a profiled ONNX Runtime step, rebuilt without the rest of the step.

Two ways to time them, both on the session's *optimized* graph (what the step really runs),
with the profiled input shapes and the step's own constant weights (prepacked as in the step):

- **alone**: each GEMM node as a graph of its own, timed by itself. Its weights stay in
  cache between runs, so this is the GEMM at its best: the roofline no fusion can reach.
- **back to back**: every GEMM of the step in one graph, in step order, each reading an
  activation shared by all GEMMs of its input shape and writing one output buffer per shape
  (as the step's arena reuses its buffers): the activations are as hot as in the step, and
  the weights stream from memory once per run as they do in the step. The gap to *alone* is
  what the weights' trip from memory costs the GEMMs; no fusion of the other ops removes it.

Input values are random: latency depends on shapes, not values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GEMM_OPS = frozenset(
    {"MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "QGemm",
     "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "Conv", "QLinearConv", "FusedConv"}
)  # fmt: skip
NUMPY = {"float": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
         "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}  # fmt: skip


@dataclass(frozen=True)
class GemmNode:
    """One GEMM node of the optimized step graph and its profiled I/O types and shapes."""

    node: object  # onnx.NodeProto
    inputs: list[dict]  # the variable inputs' {dtype: dims}, in input order
    outputs: list[dict]  # {dtype: dims} per output

    @property
    def key(self) -> str:
        """Op, shapes and attributes: GEMMs with equal keys take the same time."""
        attrs = [str(a) for a in self.node.attribute]
        return f"{self.node.op_type}{self.node.domain}{self.inputs}{self.outputs}{attrs}"


def gemm_nodes(optimized: Path, kernels: list) -> tuple[list[GemmNode], dict]:
    """The GEMM nodes of ``optimized`` (an ONNX file) in the order the profile ran them,
    each once however many runs ``kernels`` (profile events) holds; and the initializers."""
    import onnx

    graph = onnx.load(optimized).graph
    nodes = {n.name: n for n in graph.node}
    initializers = {i.name: i for i in graph.initializer}
    found, seen = [], set()
    for event in kernels:
        node = nodes.get(event["name"].removesuffix("_kernel_time"))
        if node is None or node.op_type not in GEMM_OPS or node.name in seen:
            continue
        seen.add(node.name)
        present = [n for n in node.input if n]
        shapes = _variable_shapes(present, event["args"]["input_type_shape"], initializers)
        found.append(GemmNode(node, shapes, list(event["args"]["output_type_shape"])))
    return found, initializers


def _variable_shapes(present: list[str], shapes: list[dict], initializers: dict) -> list[dict]:
    """The profiled shapes of the non-constant inputs among ``present``. The profile lists
    the inputs in order but leaves out those the kernel prepacked (constant weights: all of
    a MatMul's, only B of a MatMulIntegerToFloat's): a constant is matched to the next entry
    when its dtype and dims are that entry's, else taken as left out."""
    from onnx import helper

    left, found = list(shapes), []
    for name in present:
        if name not in initializers:
            found.append(left.pop(0))
            continue
        tensor = initializers[name]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).name
        dtype = {"float32": "float"}.get(dtype, dtype)
        if left and left[0] == {dtype: list(tensor.dims)}:
            left.pop(0)
    return found


def _value_info(name: str, entry: dict):
    from onnx import helper

    ((dtype, dims),) = entry.items()
    elem_type = helper.np_dtype_to_tensor_dtype(np.dtype(NUMPY[dtype]))
    return helper.make_tensor_value_info(name, elem_type, dims)


def _model(nodes: list, inputs: list, outputs: list, constants: list) -> bytes:
    from onnx import helper

    graph = helper.make_graph(nodes, "gemms", inputs, outputs, constants)
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10).SerializeToString()


def single_node_model(gemm: GemmNode, initializers: dict) -> bytes:
    """The GEMM alone. Its constant inputs stay initializers (ONNX Runtime prepacks
    constant weights, as in the step); the others become graph inputs of the profiled types
    and shapes."""
    node = gemm.node
    variable = [n for n in node.input if n and n not in initializers]
    inputs = [_value_info(n, e) for n, e in zip(variable, gemm.inputs, strict=True)]
    outputs = [_value_info(n, e) for n, e in zip(node.output, gemm.outputs, strict=True)]
    constants = [initializers[n] for n in node.input if n in initializers]
    return _model([node], inputs, outputs, constants)


def _shape_name(prefix: str, entry: dict) -> str:
    ((dtype, dims),) = entry.items()
    return f"{prefix}_{dtype}_{'x'.join(str(d) for d in dims) or 'scalar'}"


def back_to_back_model(gemms: list[GemmNode], initializers: dict) -> tuple[bytes, dict, dict]:
    """Every GEMM in one graph, in step order (module docstring): (model, graph inputs
    {name: {dtype: dims}}, graph outputs {name: the shared buffer name})."""
    from onnx import helper

    nodes, inputs, outputs, constants = [], {}, {}, {}
    for i, gemm in enumerate(gemms):
        names, variable = [], iter(gemm.inputs)
        for name in gemm.node.input:
            if name and name not in initializers:
                entry = next(variable)
                name = _shape_name("in", entry)
                inputs[name] = entry
            elif name:
                constants[name] = initializers[name]
            names.append(name)
        outs = [f"out{i}_{j}" for j in range(len(gemm.node.output))]
        for out, entry in zip(outs, gemm.outputs, strict=True):
            outputs[out] = (entry, _shape_name("buffer", entry))
        attrs = {a.name: helper.get_attribute_value(a) for a in gemm.node.attribute}
        nodes.append(helper.make_node(gemm.node.op_type, names, outs, domain=gemm.node.domain,
                                      **attrs))  # fmt: skip
    model = _model(
        nodes,
        [_value_info(n, e) for n, e in inputs.items()],
        [_value_info(n, e) for n, (e, _) in outputs.items()],
        list(constants.values()),
    )
    return model, inputs, {name: buffer for name, (_, buffer) in outputs.items()}


def random_feeds(entries: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays for ``{name: {dtype: dims}}``: floats in [0.1, 1), integers 0."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, entry in entries.items():
        ((dtype, dims),) = entry.items()
        value = rng.uniform(0.1, 1.0, dims) if dtype.startswith("float") else np.zeros(dims)
        feeds[name] = value.astype(NUMPY[dtype])
    return feeds


def bound_runner(session, inputs: dict, outputs: dict):
    """A callable running ``session`` on bound buffers: the inputs random, every output
    written into the one buffer of its shape (nothing reads them), nothing copied per run."""
    binding = session.io_binding()
    feeds = random_feeds(inputs)
    for name, array in feeds.items():
        binding.bind_cpu_input(name, array)
    shapes = {o.name: o for o in session.get_outputs()}
    buffers: dict[str, np.ndarray] = {}
    for name, buffer in outputs.items():
        if buffer not in buffers:
            dtype = NUMPY[shapes[name].type.removeprefix("tensor(").removesuffix(")")]
            buffers[buffer] = np.empty(shapes[name].shape, dtype)
        array = buffers[buffer]
        binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
    bound = (binding, feeds, buffers)  # the arrays must live as long as the binding

    def run() -> None:
        session.run_with_iobinding(bound[0])

    return run


def per_op(gemms: list[GemmNode], ms_by_key: dict[str, float]) -> dict[str, list]:
    """Each GEMM op type's [summed ms, node count] from the time of each node's key."""
    by_op: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for gemm in gemms:
        by_op[gemm.node.op_type][0] += ms_by_key[gemm.key]
        by_op[gemm.node.op_type][1] += 1
    return dict(by_op)
