"""The two ONNX flavors of one step graph (docs/design.md §2).

- portable: the ``pomexport::PolyMixer`` nodes plus the model-local function holding their
  decomposition (ONNX Runtime and TensorRT's parser inline it);
- plugin: the same graph without the function, its PolyMixer nodes carrying
  ``plugin_namespace="pomexport"``, so TensorRT resolves them to the ``PolyMixer`` plugin.

The attribute is what makes the lookup the same on every TensorRT: the ONNX parser looks a
plugin up under the node's ``plugin_namespace`` attribute first (default ``""``; 10.3 looks
nowhere else), and on 11 a node that has the attribute goes to the plugin before any other
importer. The portable flavor has no attribute, so a loaded plugin library never takes over
its local function (runtime/plugin/README.md "Loading" has the parser source lines).

The two differ only by ``model.functions`` and that attribute (a test compares the graphs).
"""

from __future__ import annotations

import onnx
from onnx import helper

from pomexport.errors import ExportError
from pomexport.export.artifact.contract import (
    DOMAIN,
    OP_TYPE,
    OP_VERSION,
    PLUGIN_NAMESPACE,
    PLUGIN_NAMESPACE_ATTRIBUTE,
    MixerAttrs,
)
from pomexport.export.function import MAX_ORDER, polymixer_function

FLAVORS = ("portable", "plugin")


def _onnx_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ExportError("the step graph imports no default ONNX opset")


def _mixer_attributes(model: onnx.ModelProto) -> list[MixerAttrs]:
    """The attributes of every PolyMixer node of the graph, in graph order."""
    try:
        return [
            MixerAttrs.from_onnx({a.name: helper.get_attribute_value(a) for a in node.attribute})
            for node in _mixer_nodes(model)
        ]
    except ValueError as e:
        raise ExportError(f"PolyMixer node attributes: {e}") from e


def mixer_signature(model: onnx.ModelProto) -> tuple[str, str]:
    """(variant, gate) shared by every PolyMixer node (one function serves them all)."""
    found = {(a.variant, a.gate) for a in _mixer_attributes(model)}
    if len(found) != 1:
        raise ExportError(f"expected one PolyMixer (variant, gate) in the graph, found {found}")
    return found.pop()


def _mixer_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]


def _drop_plugin_namespace(node: onnx.NodeProto) -> None:
    kept = [a for a in node.attribute if a.name != PLUGIN_NAMESPACE_ATTRIBUTE]
    del node.attribute[:]
    node.attribute.extend(kept)


def to_plugin_flavor(model: onnx.ModelProto) -> onnx.ModelProto:
    """In place: drop the local function, name the plugin's namespace on every PolyMixer node."""
    del model.functions[:]
    for node in _mixer_nodes(model):
        _drop_plugin_namespace(node)
        node.attribute.append(helper.make_attribute(PLUGIN_NAMESPACE_ATTRIBUTE, PLUGIN_NAMESPACE))
    return model


def plugin_flavor(model: onnx.ModelProto) -> onnx.ModelProto:
    """The plugin flavor of ``model`` (a copy sharing nothing mutable; see the module doc)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return to_plugin_flavor(out)


def function_for(model: onnx.ModelProto) -> onnx.FunctionProto:
    """The PolyMixer FunctionProto matching the graph's nodes and default opset."""
    variant, gate = mixer_signature(model)
    order = max(a.order for a in _mixer_attributes(model))
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
    """In place, the portable flavor: the PolyMixer FunctionProto appended, no
    ``plugin_namespace`` on the nodes (a loaded plugin must not take the function's place)."""
    function = function_for(model)
    del model.functions[:]
    model.functions.append(function)
    for node in _mixer_nodes(model):
        _drop_plugin_namespace(node)
    if not any(e.domain == DOMAIN for e in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, OP_VERSION))
    return model
