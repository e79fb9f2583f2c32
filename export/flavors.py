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
Everything here reads and edits an ``onnx_ir.Model``, the one graph form of every pass.
"""

from __future__ import annotations

import onnx_ir as ir

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
from pomexport.export.function_fixed import fixed_polymixer_function

FLAVORS = ("portable", "plugin")


def _onnx_opset(model: ir.Model) -> int:
    for domain in ("", "ai.onnx"):
        if domain in model.opset_imports:
            return model.opset_imports[domain]
    raise ExportError("the step graph imports no default ONNX opset")


def mixer_nodes(model: ir.Model) -> list[ir.Node]:
    """The graph's PolyMixer nodes, in graph order."""
    return [n for n in model.graph if n.domain == DOMAIN and n.op_type == OP_TYPE]


def _mixer_attributes(model: ir.Model) -> list[MixerAttrs]:
    """The attributes of every PolyMixer node of the graph, in graph order."""
    try:
        return [
            MixerAttrs.from_onnx({k: a.value for k, a in node.attributes.items()})
            for node in mixer_nodes(model)
        ]
    except ValueError as e:
        raise ExportError(f"PolyMixer node attributes: {e}") from e


def mixer_signature(model: ir.Model) -> tuple[str, str]:
    """(variant, gate) shared by every PolyMixer node (one function serves them all)."""
    found = {(a.variant, a.gate) for a in _mixer_attributes(model)}
    if len(found) != 1:
        raise ExportError(f"expected one PolyMixer (variant, gate) in the graph, found {found}")
    return found.pop()


def to_plugin_flavor(model: ir.Model) -> ir.Model:
    """In place: drop the local function, name the plugin's namespace on every PolyMixer node."""
    model.functions.clear()
    for node in mixer_nodes(model):
        node.attributes.pop(PLUGIN_NAMESPACE_ATTRIBUTE, None)
        attribute = ir.AttrString(PLUGIN_NAMESPACE_ATTRIBUTE, PLUGIN_NAMESPACE)
        node.attributes[PLUGIN_NAMESPACE_ATTRIBUTE] = attribute
    return model


def plugin_flavor(model: ir.Model) -> ir.Model:
    """The plugin flavor of ``model``: a copy of its graph (sharing the weight tensors)."""
    return to_plugin_flavor(model.clone())


def _static_tokens(model: ir.Model) -> int | None:
    """The token count N when every PolyMixer node's ``g`` is (B, N, C) with the same static
    N (a step graph), else None."""
    found = set()
    for node in mixer_nodes(model):
        shape = node.inputs[1].shape if node.inputs[1] is not None else None
        if shape is None or len(shape) != 3 or not isinstance(shape[1], int):
            return None
        found.add(shape[1])
    return found.pop() if len(found) == 1 else None


def function_for(model: ir.Model) -> ir.Function:
    """The PolyMixer function matching the graph's nodes and default opset: the body fixed
    on the nodes' attributes (and their token count, when static) when they all share them
    (``export/function_fixed.py``, fewer and larger ops), else the generic one reading
    ``order`` and ``sel_heads`` per node."""
    variant, gate = mixer_signature(model)
    attributes = set(_mixer_attributes(model))
    order = max(a.order for a in attributes)
    if order > MAX_ORDER:
        raise ExportError(
            f"PolyMixer order {order}: the portable flavor's decomposition covers"
            f" order <= {MAX_ORDER}"
        )
    if len(attributes) == 1:
        function = fixed_polymixer_function(attributes.pop(), _static_tokens(model))
    else:
        function = polymixer_function(variant, gate)
    # The body uses no op whose semantics changed after opset 18: import the model's opset.
    function.opset_import[0].version = _onnx_opset(model)
    return ir.serde.deserialize_function(function)


def add_function(model: ir.Model) -> ir.Model:
    """In place, the portable flavor: the PolyMixer function added, no ``plugin_namespace``
    on the nodes (a loaded plugin must not take the function's place)."""
    function = function_for(model)
    model.functions.clear()
    model.functions[function.identifier()] = function
    for node in mixer_nodes(model):
        node.attributes.pop(PLUGIN_NAMESPACE_ATTRIBUTE, None)
    if DOMAIN not in model.opset_imports:
        model.opset_imports[DOMAIN] = OP_VERSION
    return model
