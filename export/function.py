"""``pomexport::PolyMixer`` decomposed into standard ONNX ops: the portable flavor's function.

The decomposition is written in onnxscript, in the steps of docs/design.md §1 (features,
aggregation, selection). ``order`` and ``sel_heads`` stay attributes of the function (the
chunk and head counts are computed from them in the graph); the variant and the gate pick
the body, so :func:`polymixer_function` returns the FunctionProto for one
(variant, gate) pair — a model uses one pair in every layer. The helper functions are
inlined, so the result is one flat FunctionProto in domain ``pomexport`` named
``PolyMixer``, which ONNX Runtime and TensorRT's parser inline in turn.

When every PolyMixer node of a graph has the same attributes (a model's config gives them
all), the exporter writes the body fixed on them instead (:mod:`pomexport.export.function_fixed`,
fewer and larger ops); this generic one serves graphs whose nodes differ.

The token sum always runs in fp32: ``h`` and ``g`` are cast to float first and ``y`` is cast
back to ``h``'s type at the end (a sum of thousands of degree-k features overflows fp16).
"""

from __future__ import annotations

import functools

import onnx
import onnx.inliner
from onnx import helper
from onnxscript import FLOAT, script
from onnxscript import opset18 as op
from onnxscript.values import Opset

from pomexport.errors import ExportError
from pomexport.export.artifact.contract import DOMAIN, OP_ATTRIBUTES, OP_TYPE, OP_VERSION

# Helpers live in a private domain; they are inlined and never reach a model.
_HELPERS = Opset("pomexport.decomposition", 1)
_POM = Opset(DOMAIN, OP_VERSION)
_ONNX_OPSET = 18

# -- features: h (B, N, C) fp32 -> P (B, N, C) fp32 -----------------------------------------


MAX_ORDER = 16  # the CumProd below covers k <= 16; the exporter refuses more


@script(_HELPERS, default_opset=op)
def CumProd(x: FLOAT) -> FLOAT:
    """Running product over axis -2: x (..., k, c) -> out[..., j, :] = prod_{i<=j} x[..., i, :].

    ONNX has no CumProd. A doubling scan (Hillis-Steele): after the round with shift s each
    row holds the product of the 2s rows ending at it, so four rounds cover k <= 16. Rows
    shifted in from before the start are ones; when s >= k a round multiplies by ones only.
    It replaced a (k, k)-masked ReduceProd over a tensor twice the size: S/2 steps on ORT
    CPU (1 thread, batch 2) ran 4 % (fp32) and 5.5 % (int8) faster with the scan.
    """
    ones = op.Expand(op.CastLike(op.Constant(value_float=1.0), x), op.Shape(x))
    x = x * op.Concat(op.Slice(ones, [0], [1], [-2]), op.Slice(x, [0], [-1], [-2]), axis=-2)
    x = x * op.Concat(op.Slice(ones, [0], [2], [-2]), op.Slice(x, [0], [-2], [-2]), axis=-2)
    x = x * op.Concat(op.Slice(ones, [0], [4], [-2]), op.Slice(x, [0], [-4], [-2]), axis=-2)
    return x * op.Concat(op.Slice(ones, [0], [8], [-2]), op.Slice(x, [0], [-8], [-2]), axis=-2)


@script(_HELPERS, default_opset=op)
def MomentsFeatures(h: FLOAT, order: int) -> FLOAT:
    """``a_j = gelu(h_j)`` on ``order`` chunks, ``P = concat(cumprod_j a_j)``."""
    a = h * 0.5 * (op.Erf(h * 0.7071067811865476) + 1.0)  # exact (erf) gelu, as torch's default
    k = op.Reshape(op.Constant(value_int=order), [1])
    chunks = op.Reshape(a, op.Concat(op.Shape(a, end=2), k, [-1], axis=0))  # (B, N, k, C/k)
    return op.Reshape(CumProd(chunks), op.Shape(h))


@script(_HELPERS, default_opset=op)
def PowersFeatures(h: FLOAT, coeff: FLOAT, order: int) -> FLOAT:
    """``a = clamp(leaky_relu(h), -0.1, 6)``, ``P = sum_j coeff[:, j-1] * a**j``."""
    a = op.Clip(op.LeakyRelu(h, alpha=0.01), op.Constant(value_float=-0.1), 6.0)
    k = op.Reshape(op.Constant(value_int=order), [1])
    repeats = op.Concat(op.Constant(value_ints=[1, 1]), k, [1], axis=0)
    powers = CumProd(op.Tile(op.Unsqueeze(a, [-2]), repeats))  # (B, N, k, C): a**1 .. a**k
    return op.ReduceSum(powers * op.Transpose(coeff, perm=[1, 0]), [-2], keepdims=0)


# -- aggregation and selection ---------------------------------------------------------------


@script(_HELPERS, default_opset=op)
def Select(gate: FLOAT, mean: FLOAT, sel_heads: int) -> FLOAT:
    """gate (B, N, C | S) reads mean (B, 1, C): per channel, or one gate per head of C/S."""
    heads = op.Max(op.Reshape(op.Constant(value_int=sel_heads), [1]), op.Constant(value_ints=[1]))
    gate_h = op.Reshape(gate, op.Concat(op.Shape(gate, end=2), heads, [-1], axis=0))
    mean_h = op.Reshape(mean, op.Concat(op.Shape(mean, end=2), heads, [-1], axis=0))
    out = gate_h * mean_h  # (B, N, S, C/S)
    return op.Reshape(out, op.Concat(op.Shape(gate, end=2), op.Shape(mean, start=2), axis=0))


@script(_HELPERS, default_opset=op)
def Aggregate(p: FLOAT, state: FLOAT, count: FLOAT) -> tuple[FLOAT, FLOAT]:
    """state_out = state + sum_n P; mean = state_out / (count + N), shaped (B, 1, C)."""
    state_out = state + op.ReduceSum(p, [1], keepdims=0)
    n = op.Cast(op.Shape(p, start=1, end=2), to=1)
    mean = state_out / op.Unsqueeze(count + n, [-1])
    return op.Unsqueeze(mean, [1]), state_out


# -- the four bodies: (variant, gate) ---------------------------------------------------------


@script(_POM, default_opset=op)
def MomentsSigmoid(h, g, state, count, order: int, sel_heads: int):
    mean, state_out = Aggregate(MomentsFeatures(op.Cast(h, to=1), order=order), state, count)
    y = Select(op.Sigmoid(op.Cast(g, to=1)), mean, sel_heads=sel_heads)
    return op.CastLike(y, h), state_out


@script(_POM, default_opset=op)
def MomentsHardSigmoid(h, g, state, count, order: int, sel_heads: int):
    mean, state_out = Aggregate(MomentsFeatures(op.Cast(h, to=1), order=order), state, count)
    gate = op.HardSigmoid(op.Cast(g, to=1), alpha=0.16666666666666666, beta=0.5)
    return op.CastLike(Select(gate, mean, sel_heads=sel_heads), h), state_out


@script(_POM, default_opset=op)
def PowersSigmoid(h, g, state, count, coeff, order: int, sel_heads: int):
    p = PowersFeatures(op.Cast(h, to=1), coeff, order=order)
    mean, state_out = Aggregate(p, state, count)
    y = Select(op.Sigmoid(op.Cast(g, to=1)), mean, sel_heads=sel_heads)
    return op.CastLike(y, h), state_out


@script(_POM, default_opset=op)
def PowersHardSigmoid(h, g, state, count, coeff, order: int, sel_heads: int):
    p = PowersFeatures(op.Cast(h, to=1), coeff, order=order)
    mean, state_out = Aggregate(p, state, count)
    gate = op.HardSigmoid(op.Cast(g, to=1), alpha=0.16666666666666666, beta=0.5)
    return op.CastLike(Select(gate, mean, sel_heads=sel_heads), h), state_out


_BODIES = {
    ("moments", "sigmoid"): MomentsSigmoid,
    ("moments", "hardsigmoid"): MomentsHardSigmoid,
    ("powers", "sigmoid"): PowersSigmoid,
    ("powers", "hardsigmoid"): PowersHardSigmoid,
}
_HELPER_FUNCTIONS = (CumProd, MomentsFeatures, PowersFeatures, Select, Aggregate)


def _flatten(body: onnx.FunctionProto) -> onnx.FunctionProto:
    """Inline the helper calls of ``body`` (via a throwaway model holding it)."""
    functions = [body] + [f.to_function_proto() for f in _HELPER_FUNCTIONS]
    node = helper.make_node(body.name, list(body.input), list(body.output), domain=DOMAIN)
    graph = helper.make_graph([node], "holder", [], [])
    model = helper.make_model(
        graph,
        functions=functions,
        opset_imports=[helper.make_opsetid("", _ONNX_OPSET), helper.make_opsetid(DOMAIN, 1)],
    )
    helper_ids = [(_HELPERS.domain, f.name) for f in _HELPER_FUNCTIONS]
    inlined = onnx.inliner.inline_selected_functions(model, helper_ids)
    (flat,) = [f for f in inlined.functions if f.name == body.name]
    return flat


@functools.cache
def _function_bytes(variant: str, gate: str) -> bytes:
    if (variant, gate) not in _BODIES:
        raise ExportError(f"no PolyMixer decomposition for variant={variant!r}, gate={gate!r}")
    flat = _flatten(_BODIES[variant, gate].to_function_proto())
    flat.name = OP_TYPE
    # Declare every contract attribute so any PolyMixer node's attributes are known to it.
    del flat.attribute[:]
    del flat.attribute_proto[:]
    for name, (_, default) in OP_ATTRIBUTES.items():
        flat.attribute_proto.append(helper.make_attribute(name, default))
    del flat.opset_import[:]
    flat.opset_import.append(helper.make_opsetid("", _ONNX_OPSET))
    return flat.SerializeToString()


def polymixer_function(variant: str, gate: str) -> onnx.FunctionProto:
    """The flat FunctionProto ``pomexport.PolyMixer`` for one (variant, gate) pair.

    Inputs ``h, g, state, count`` (+ ``coeff`` for ``powers``), outputs ``y, state_out``;
    ``order`` and ``sel_heads`` are read from the calling node's attributes.
    """
    proto = onnx.FunctionProto()
    proto.ParseFromString(_function_bytes(variant, gate))
    return proto
