"""``pomexport::PolyMixer`` decomposed for one fixed (variant, gate, order, sel_heads).

The generic function (:mod:`pomexport.export.function`) reads ``order`` and ``sel_heads``
from the calling node, so its chunk and head counts are computed in the graph (Shape, Concat,
Reshape at run time) and its running product is a 4-round doubling scan whatever the order.
The exporter knows the attributes of every node, so when all the nodes of a graph share them
it writes this body instead (issue 24), in the steps of docs/design.md §1:

- features, ``moments``: ``a = gelu(h)`` split in ``order`` chunks (one ``Split``), the
  running products ``p_j = p_{j-1} * a_j``; ``powers``: ``a = clamp(leaky_relu(h))`` and its
  powers ``p_j = p_{j-1} * a`` — ``order - 1`` multiplies, no scan rounds over ones;
- aggregation: each ``p_j`` summed over the tokens alone (a ``MatMul`` by a row of ones), the small
  sums concatenated (``moments``) or weighted by ``coeff[:, j]`` and added (``powers``): the
  full feature tensor ``P`` is never built;
- selection: ``gate * mean`` by broadcasting, per selection head through Reshapes with
  constant targets (``0`` copies a dimension) — no ``Shape`` but the token count's;
- the token count ``N``: a constant when the exporter knows it (every node's ``g`` has one
  static token dimension, as in a step graph), so the row of ones and the divisor are
  constants too and no shape arithmetic runs per call; otherwise read from ``g``.

The exact GELU is written ``(h * 0.5) * (Erf(h / sqrt 2) + 1)``, the form ONNX Runtime's
``GeluFusion`` turns into one ``Gelu`` kernel (its ``gelu_fusion.cc`` matches Div by sqrt 2,
Erf, Add 1, and a Mul by a ``Mul(h, 0.5)``); TensorRT's parser runs the same standard ops.
Everything runs in fp32 (``h`` and ``g`` cast first, ``y`` cast back) as in the generic body.
"""

from __future__ import annotations

import math

import onnx
from onnx import TensorProto, helper

from pomexport.export.artifact.contract import DOMAIN, OP_ATTRIBUTES, OP_TYPE, MixerAttrs

_ONNX_OPSET = 18


class _Body:
    """Nodes of one function body, with fresh value names and scalar constants."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self._count = 0

    def add(
        self, op: str, *inputs: str, outputs: int = 1, name: str | None = None, **attrs
    ) -> str | list[str]:
        """One node; its output names are fresh, or ``name`` (a function output)."""
        self._count += 1
        names = [name] if name else [f"{op.lower()}_{self._count}_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value: float | list[int]) -> str:
        if isinstance(value, float):
            tensor = helper.make_tensor("v", TensorProto.FLOAT, [], [value])
        else:
            tensor = helper.make_tensor("v", TensorProto.INT64, [len(value)], value)
        return self.add("Constant", value=tensor)


def _gelu(body: _Body, h: str) -> str:
    """Exact (erf) GELU in the form ONNX Runtime fuses (module docstring)."""
    half = body.add("Mul", h, body.const(0.5))
    erf = body.add("Erf", body.add("Div", h, body.const(math.sqrt(2.0))))
    return body.add("Mul", half, body.add("Add", erf, body.const(1.0)))


def _running_products(body: _Body, factors: list[str]) -> list[str]:
    """``p_1 = f_1, p_j = p_{j-1} * f_j``."""
    products = [factors[0]]
    for factor in factors[1:]:
        products.append(body.add("Mul", products[-1], factor))
    return products


def _token_sums(body: _Body, h: str, attrs: MixerAttrs, coeff: str, ones: str) -> str:
    """sum over tokens of P: (B, N, C) fp32 -> (B, 1, C) fp32 (module docstring). Each sum
    is ``ones (1, N) @ p (B, N, c)``: at batch 1 ONNX Runtime's ReduceSum over axis 1 took
    9x the MatMul's time (0.157 vs 0.017 ms at N = 256, c = 768), at batch 2 the same."""
    if attrs.variant == "moments":
        a = _gelu(body, h)
        chunks = [a]
        if attrs.order > 1:
            chunks = body.add("Split", a, axis=-1, num_outputs=attrs.order, outputs=attrs.order)
        sums = [body.add("MatMul", ones, p) for p in _running_products(body, chunks)]
        return sums[0] if len(sums) == 1 else body.add("Concat", *sums, axis=-1)
    leaky = body.add("LeakyRelu", h, alpha=0.01)
    a = body.add("Clip", leaky, body.const(-0.1), body.const(6.0))
    total = None
    for j, p in enumerate(_running_products(body, [a] * attrs.order)):
        weight = body.add("Gather", coeff, body.const([j]), axis=1)  # (C, 1)
        term = body.add("Mul", body.add("MatMul", ones, p), body.add(
            "Squeeze", weight, body.const([1])))  # fmt: skip
        total = term if total is None else body.add("Add", total, term)
    return total


def _select(body: _Body, gate: str, mean: str, heads: int) -> str:
    """gate (B, N, C | S) reads mean (B, 1, C): per channel, or one gate per head of C/S."""
    if heads <= 1:
        return body.add("Mul", gate, mean)
    gate_h = body.add("Reshape", gate, body.const([0, 0, heads, 1]))
    mean_h = body.add("Reshape", mean, body.const([0, 1, heads, -1]))
    return body.add("Reshape", body.add("Mul", gate_h, mean_h), body.const([0, 0, -1]))


def _ones_and_tokens(body: _Body, tokens: int | None) -> tuple[str, str]:
    """The row of ones (1, N) and N as an fp32 scalar: constants when N is known (module
    docstring), else computed from ``g``'s shape (not ``h``'s: a second reader of ``h``
    would keep ONNX Runtime from fusing ``h``'s bias into its Gelu)."""
    if tokens is not None:
        ones = helper.make_tensor("ones", TensorProto.FLOAT, [1, tokens], [1.0] * tokens)
        return body.add("Constant", value=ones), body.const(float(tokens))
    n = body.add("Shape", "g", start=1, end=2)
    ones = body.add("ConstantOfShape", body.add("Concat", body.const([1]), n, axis=0),
                    value=helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0]))  # fmt: skip
    return ones, body.add("Cast", n, to=TensorProto.FLOAT)


def _build(body: _Body, attrs: MixerAttrs, tokens: int | None) -> None:
    h = body.add("Cast", "h", to=TensorProto.FLOAT)
    ones, tokens_fp32 = _ones_and_tokens(body, tokens)
    sums = body.add("Squeeze", _token_sums(body, h, attrs, "coeff", ones), body.const([1]))
    state_out = body.add("Add", "state", sums, name="state_out")
    divisor = body.add("Unsqueeze", body.add("Add", "count", tokens_fp32), body.const([-1]))
    mean = body.add("Unsqueeze", body.add("Div", state_out, divisor), body.const([1]))
    g = body.add("Cast", "g", to=TensorProto.FLOAT)
    if attrs.gate == "sigmoid":
        gate = body.add("Sigmoid", g)
    else:
        gate = body.add("HardSigmoid", g, alpha=1.0 / 6.0, beta=0.5)
    body.add("CastLike", _select(body, gate, mean, attrs.sel_heads), "h", name="y")


def fixed_polymixer_function(attrs: MixerAttrs, tokens: int | None = None) -> onnx.FunctionProto:
    """The flat FunctionProto ``pomexport.PolyMixer`` for nodes whose attributes are
    ``attrs``: inputs ``h, g, state, count`` (+ ``coeff`` for ``powers``), outputs
    ``y, state_out``. It declares every contract attribute (any PolyMixer node's attributes
    are known to it) but reads none: they are fixed in the body. ``tokens``: the token
    count every calling node's ``g`` has, fixed in the body too; ``None`` reads it per call."""
    if tokens is not None and tokens < 1:
        raise ValueError(f"PolyMixer token count must be >= 1, got {tokens}")
    body = _Body()
    _build(body, attrs, tokens)
    inputs = ["h", "g", "state", "count"] + (["coeff"] if attrs.variant == "powers" else [])
    defaults = [
        helper.make_attribute(name, default) for name, (_, default) in OP_ATTRIBUTES.items()
    ]
    opsets = [helper.make_opsetid("", _ONNX_OPSET)]
    return helper.make_function(
        DOMAIN, OP_TYPE, inputs, ["y", "state_out"], body.nodes, opsets, attribute_protos=defaults
    )
