"""The GPU serving path: the step graph under Triton's implicit state management.

Triton's sequence batcher can keep a model's recurrent state itself (``sequence_batching.state``:
an input/output pair per state, batch axis first, reset to ``initial_state`` on START). The
step graph (docs/design.md §3) is wrapped for it (:func:`implicit_state_model`):

- states ``STATE_IN``/``STATE_OUT`` [B, L, C] fp32 (the graph's ``state`` is [L, B, C]: a
  Transpose on each side), ``COUNT_IN``/``COUNT_OUT`` [B, 1] fp32 and ``FRAME_IN``/``FRAME_OUT``
  [B, 1] int64 (the stream's frame position);
- inputs ``X_T``, ``T``, ``LABEL`` and ``COMMIT`` [B, 1] fp32 (1: this is the t = 0 step of a
  clean frame, which enters the state; 0: a denoising step, whose sums are discarded — the
  state output is then the state input), output ``V``.

The frame loop (noise, schedule, Euler updates, the commit step) runs in a Python BLS model
(``pomdit_frames``) that sends each step to ``pomdit_step`` in the same sequence, so the
state never leaves the server's device memory and the step model batches the steps of every
stream. Only ONNX Runtime (``backend: "onnxruntime"``) is configured here; a TensorRT plan
would take the same I/O.
"""

from __future__ import annotations

import os

import onnx
from onnx import TensorProto, helper

STATE_PAIRS = (("STATE_IN", "STATE_OUT"), ("COUNT_IN", "COUNT_OUT"), ("FRAME_IN", "FRAME_OUT"))


def _value(name: str, elem: int, dims: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def _const(name: str, elem: int, dims: list[int], values: list) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor(name, elem, dims, values)
    )


def _adapter_nodes(tokens_per_frame: int) -> list[onnx.NodeProto]:
    """Batch-first states in, the step graph's own inputs out, and the commit selection."""
    const = helper.make_node
    return [
        const("Transpose", ["STATE_IN"], ["state"], perm=[1, 0, 2]),
        _const("_flat", TensorProto.INT64, [1], [-1]),
        const("Reshape", ["COUNT_IN", "_flat"], ["count"]),
        const("Reshape", ["FRAME_IN", "_flat"], ["frame_index"]),
        const("Reshape", ["T", "_flat"], ["t"]),
        const("Reshape", ["LABEL", "_flat"], ["label"]),
        const("Identity", ["X_T"], ["x_t"]),
        const("Identity", ["v"], ["V"]),
        # STATE_OUT = commit ? state_out (batch first) : STATE_IN
        const("Transpose", ["state_out"], ["_new_state"], perm=[1, 0, 2]),
        _const("_half", TensorProto.FLOAT, [], [0.5]),
        const("Greater", ["COMMIT", "_half"], ["_commit"]),
        _const("_axes", TensorProto.INT64, [1], [2]),
        const("Unsqueeze", ["_commit", "_axes"], ["_commit3"]),
        const("Where", ["_commit3", "_new_state", "STATE_IN"], ["STATE_OUT"]),
        _const("_tokens", TensorProto.FLOAT, [], [float(tokens_per_frame)]),
        const("Mul", ["COMMIT", "_tokens"], ["_added"]),
        const("Add", ["COUNT_IN", "_added"], ["COUNT_OUT"]),
        const("Cast", ["COMMIT"], ["_step"], to=TensorProto.INT64),
        const("Add", ["FRAME_IN", "_step"], ["FRAME_OUT"]),
    ]  # fmt: skip


def implicit_state_model(step_onnx: str | os.PathLike, depth: int, width: int, in_channels: int,
                         size: int, tokens_per_frame: int) -> onnx.ModelProto:  # fmt: skip
    """The step graph of ``step_onnx`` with the implicit-state I/O of the module doc.

    ``depth`` L, ``width`` C (state width), ``in_channels``/``size``: the latent's shape."""
    model = onnx.load(str(step_onnx))
    graph = model.graph
    if [i.name for i in graph.input] != ["x_t", "t", "label", "frame_index", "state", "count"]:
        raise ValueError("implicit_state_model wraps class-conditional step graphs only")
    x_type = graph.input[0].type.tensor_type.elem_type
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(_adapter_nodes(tokens_per_frame)[:7] + nodes)
    graph.node.extend(_adapter_nodes(tokens_per_frame)[7:])
    del graph.input[:]
    del graph.output[:]
    graph.input.extend([
        _value("X_T", x_type, ["B", in_channels, size, size]),
        _value("T", TensorProto.FLOAT, ["B", 1]),
        _value("LABEL", TensorProto.INT64, ["B", 1]),
        _value("COMMIT", TensorProto.FLOAT, ["B", 1]),
        _value("STATE_IN", TensorProto.FLOAT, ["B", depth, width]),
        _value("COUNT_IN", TensorProto.FLOAT, ["B", 1]),
        _value("FRAME_IN", TensorProto.INT64, ["B", 1]),
    ])  # fmt: skip
    graph.output.extend([
        _value("V", x_type, ["B", in_channels, size, size]),
        _value("STATE_OUT", TensorProto.FLOAT, ["B", depth, width]),
        _value("COUNT_OUT", TensorProto.FLOAT, ["B", 1]),
        _value("FRAME_OUT", TensorProto.INT64, ["B", 1]),
    ])  # fmt: skip
    onnx.checker.check_model(model)
    return model
