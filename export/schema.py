"""The ONNX ``OpSchema`` of ``pomexport::PolyMixer`` v1 (docs/design.md §2).

Registering the schema lets ``onnx.checker`` and ``onnx.shape_inference`` understand graphs
holding the node (the plugin flavor has nothing else to explain it). Names come from
``export/artifact/contract.py``; registration is idempotent.

    h (B, N, C) T, g (B, N, C | sel_heads) T, state (B, C) fp32, count (B,) fp32,
    coeff (C, k) fp32 (optional, ``powers`` only)
    -> y (B, N, C) T, state_out (B, C) fp32        T in {float, float16, bfloat16}
"""

from __future__ import annotations

import threading

import onnx
from onnx import TensorProto, defs, helper

from pomexport.export.artifact.contract import (
    DOMAIN,
    OP_ATTRIBUTES,
    OP_INPUTS,
    OP_OUTPUTS,
    OP_TYPE,
    OP_VERSION,
    PLUGIN_NAMESPACE_ATTRIBUTE,
)

_DOC = """Polynomial Mixer (PoM): y = gate(g) * (state + sum_n P(h_n)) / (count + N),
state_out = state + sum_n P(h_n). The token sum accumulates in fp32 whatever T is."""

_FLOAT_TYPES = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]
_INPUT_TYPES = {"h": "T", "g": "T", "state": "tensor(float)", "count": "tensor(float)"}
_INPUT_TYPES["coeff"] = "tensor(float)"
_OUTPUT_TYPES = {"y": "T", "state_out": "tensor(float)"}
_lock = threading.Lock()


def _formal(name: str, type_str: str, optional: bool = False) -> defs.OpSchema.FormalParameter:
    option = defs.OpSchema.FormalParameterOption
    return defs.OpSchema.FormalParameter(
        name, type_str, param_option=option.Optional if optional else option.Single
    )


def _attribute(name: str, default: object) -> defs.OpSchema.Attribute:
    return defs.OpSchema.Attribute(name, helper.make_attribute(name, default), "")


def _plugin_namespace_attribute() -> defs.OpSchema.Attribute:
    """Optional, no default: only the plugin flavor's nodes carry it (export/flavors.py), and
    the checker must accept it there; it is TensorRT's, not the op's (no kernel reads it)."""
    doc = "TensorRT plugin registry namespace of the PolyMixer plugin (plugin flavor only)"
    string = defs.OpSchema.AttrType.STRING
    return defs.OpSchema.Attribute(PLUGIN_NAMESPACE_ATTRIBUTE, string, doc, required=False)


def _infer(ctx: onnx.shape_inference.InferenceContext) -> None:
    """``y`` takes ``h``'s type and shape; ``state_out`` is fp32 shaped like ``state``."""
    if ctx.has_input(0):
        ctx.set_output_type(0, ctx.get_input_type(0))
    state_type = onnx.TypeProto()
    state_type.tensor_type.elem_type = TensorProto.FLOAT
    if ctx.has_input(2):
        given = ctx.get_input_type(2)
        if given is not None and given.tensor_type.HasField("shape"):
            state_type.tensor_type.shape.CopyFrom(given.tensor_type.shape)
    ctx.set_output_type(1, state_type)


def build_schema() -> defs.OpSchema:
    """A fresh ``OpSchema`` object for ``pomexport::PolyMixer`` v1 (not registered)."""
    inputs = [_formal(name, _INPUT_TYPES[name], optional=name == "coeff") for name in OP_INPUTS]
    outputs = [_formal(name, _OUTPUT_TYPES[name]) for name in OP_OUTPUTS]
    attributes = [_attribute(name, default) for name, (_, default) in OP_ATTRIBUTES.items()]
    attributes.append(_plugin_namespace_attribute())
    schema = defs.OpSchema(
        OP_TYPE,
        DOMAIN,
        OP_VERSION,
        _DOC,
        inputs=inputs,
        outputs=outputs,
        type_constraints=[("T", _FLOAT_TYPES, "model precision of h, g and y")],
        attributes=attributes,
    )
    schema.set_type_and_shape_inference_function(_infer)
    return schema


def register_schema() -> None:
    """Register the schema with ONNX once per process (later calls do nothing)."""
    with _lock:
        if defs.has(OP_TYPE, OP_VERSION, DOMAIN):
            return
        defs.register_schema(build_schema())
