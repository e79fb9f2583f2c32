"""The two ONNX flavors of one step graph (DESIGN.md §2).

- portable: the ``pomexport::PolyMixer`` nodes plus the model-local function holding their
  decomposition (ONNX Runtime and TensorRT's parser inline it);
- plugin: the same graph without the function, so TensorRT resolves the node to the
  ``PolyMixer`` plugin.

The two differ only by ``model.functions`` (a test compares the graphs).
"""

from __future__ import annotations

import onnx
from onnx import helper

from pomexport.errors import ExportError
from pomexport.export.contract import DOMAIN, OP_TYPE, OP_VERSION
from pomexport.export.function import MAX_ORDER, polymixer_function

FLAVORS = ("portable", "plugin")


def _onnx_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ExportError("the step graph imports no default ONNX opset")


def _mixer_attributes(model: onnx.ModelProto) -> list[dict]:
    """The attributes of every PolyMixer node of the graph, in graph order."""
    return [
        {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for node in model.graph.node
        if node.domain == DOMAIN and node.op_type == OP_TYPE
    ]


def mixer_signature(model: onnx.ModelProto) -> tuple[str, str]:
    """(variant, gate) shared by every PolyMixer node (one function serves them all)."""
    found = {(a["variant"].decode(), a["gate"].decode()) for a in _mixer_attributes(model)}
    if len(found) != 1:
        raise ExportError(f"expected one PolyMixer (variant, gate) in the graph, found {found}")
    return found.pop()


def plugin_flavor(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with no local function (a shallow copy sharing nothing mutable)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.functions[:]
    return out


def function_for(model: onnx.ModelProto) -> onnx.FunctionProto:
    """The PolyMixer FunctionProto matching the graph's nodes and default opset."""
    variant, gate = mixer_signature(model)
    order = max(a["order"] for a in _mixer_attributes(model))
    if order > MAX_ORDER:
        raise ExportError(
            f"PolyMixer order {order}: the portable flavor's decomposition covers"
            f" order <= {MAX_ORDER}"
        )
    function = polymixer_function(variant, gate)
    # The body uses no op whose semantics changed after opset 18: import the model's opset.
    function.opset_import[0].version = _onnx_opset(model)
    return function


def add_function(model: onnx.ModelProto) -> onnx.ModelProto:
    """Append the PolyMixer FunctionProto in place (portable flavor) and return ``model``."""
    function = function_for(model)
    del model.functions[:]
    model.functions.append(function)
    if not any(e.domain == DOMAIN for e in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
    return model
