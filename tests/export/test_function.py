"""The PolyMixer ONNX function (decomposition) equals the torch reference in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from pomexport.errors import ExportError
from pomexport.export.artifact.contract import MixerAttrs
from pomexport.export.flavors import function_for
from pomexport.export.function import MAX_ORDER, polymixer_function
from pomexport.export.function_fixed import fixed_polymixer_function
from pomexport.export.schema import register_schema
from pomexport.models import poly_mixer_reference

B, N, C = 3, 5, 12


def _function(variant, gate, order, sel_heads, fixed: bool | str) -> onnx.FunctionProto:
    """``fixed``: False (generic body), True (fixed, N read from g), "tokens" (N fixed too)."""
    if fixed:
        tokens = N if fixed == "tokens" else None
        return fixed_polymixer_function(MixerAttrs(variant, order, gate, sel_heads), tokens)
    return polymixer_function(variant, gate)


def _mixer_model(
    variant, gate, order, sel_heads, dtype=TensorProto.FLOAT, fixed=False
) -> onnx.ModelProto:
    register_schema()
    names = ["h", "g", "state", "count"] + (["coeff"] if variant == "powers" else [])
    attrs = {"variant": variant, "order": order, "gate": gate, "sel_heads": sel_heads}
    node = helper.make_node("PolyMixer", names, ["y", "state_out"], domain="pomexport", **attrs)
    width = sel_heads if sel_heads > 1 else C
    shapes = {
        "h": [B, N, C],
        "g": [B, N, width],
        "state": [B, C],
        "count": [B],
        "coeff": [C, order],
    }
    types = {"h": dtype, "g": dtype}
    inputs = [
        helper.make_tensor_value_info(n, types.get(n, TensorProto.FLOAT), shapes[n]) for n in names
    ]
    outputs = [
        helper.make_tensor_value_info("y", dtype, [B, N, C]),
        helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [B, C]),
    ]
    graph = helper.make_graph([node], "mixer", inputs, outputs)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("pomexport", 1)]
    function = _function(variant, gate, order, sel_heads, fixed)
    model = helper.make_model(graph, opset_imports=opsets, functions=[function])
    model.ir_version = 10
    return model


CASES = [
    (variant, gate, order, 0)
    for variant in ("moments", "powers")
    for gate in ("sigmoid", "hardsigmoid")
    for order in (1, 2, 3)
] + [("powers", "hardsigmoid", 2, 4), ("powers", "sigmoid", 3, 2), ("powers", "hardsigmoid", 2, 1)]
# Orders past each round of the doubling CumProd scan, up to its limit.
CASES += [("moments", "sigmoid", 4, 0), ("moments", "sigmoid", 6, 0), ("moments", "sigmoid", 12, 0)]
CASES += [("powers", "sigmoid", 9, 0), ("powers", "sigmoid", 16, 0)]


@pytest.mark.parametrize("fixed", [False, True, "tokens"], ids=["generic", "fixed", "fixed-N"])
@pytest.mark.parametrize(("variant", "gate", "order", "sel_heads"), CASES)
def test_function_matches_reference(variant, gate, order, sel_heads, fixed):
    model = _mixer_model(variant, gate, order, sel_heads, fixed=fixed)
    onnx.checker.check_model(model, full_check=True)
    gen = torch.Generator().manual_seed(order * 10 + sel_heads)
    width = sel_heads if sel_heads > 1 else C
    h, g = torch.randn(B, N, C, generator=gen), torch.randn(B, N, width, generator=gen)
    if variant == "powers" and order > 3:
        h = h * 0.3  # a**16 of a = 6 (the clamp) is ~3e12: fp32 sums of it cancel past 1e-5
    state, count = torch.randn(B, C, generator=gen) * 4, torch.tensor([0.0, 5.0, 40.0])
    coeff = torch.randn(C, order, generator=gen) if variant == "powers" else None
    feeds = {"h": h.numpy(), "g": g.numpy(), "state": state.numpy(), "count": count.numpy()}
    if coeff is not None:
        feeds["coeff"] = coeff.numpy()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, state_out = session.run(None, feeds)
    ref_y, ref_state = poly_mixer_reference(
        h, g, state, count, coeff, MixerAttrs(variant, order, gate, sel_heads)
    )
    np.testing.assert_allclose(y, ref_y.numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(state_out, ref_state.numpy(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fixed", [False, True, "tokens"], ids=["generic", "fixed", "fixed-N"])
def test_fp16_inputs_accumulate_in_fp32(fixed):
    """fp16 h/g: the token sum runs in fp32, y comes back in fp16 (a sum that overflows fp16)."""
    model = _mixer_model("moments", "sigmoid", 2, 0, dtype=TensorProto.FLOAT16, fixed=fixed)
    h = np.full((B, N, C), 12.0, dtype=np.float16)  # gelu(12)^2 = 144 per token
    g = np.zeros((B, N, C), dtype=np.float16)
    state = np.full((B, C), 70000.0, dtype=np.float32)  # beyond fp16's 65504
    count = np.full((B,), 1000.0, dtype=np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, state_out = session.run(None, {"h": h, "g": g, "state": state, "count": count})
    assert y.dtype == np.float16 and state_out.dtype == np.float32
    expected_state = 70000.0 + N * np.array([12.0] * (C // 2) + [144.0] * (C // 2))
    np.testing.assert_allclose(state_out[0], expected_state, rtol=1e-6)
    np.testing.assert_allclose(y[0, 0], 0.5 * expected_state / (1000 + N), rtol=2e-3)


def test_function_is_flat_and_named_by_contract():
    function = polymixer_function("powers", "hardsigmoid")
    assert (function.domain, function.name) == ("pomexport", "PolyMixer")
    assert {a.name for a in function.attribute_proto} == {"variant", "order", "gate", "sel_heads"}
    assert all(n.domain in ("", "ai.onnx") for n in function.node)  # helpers inlined


def test_portable_flavor_refuses_orders_past_the_scan():
    model = _mixer_model("powers", "sigmoid", MAX_ORDER + 1, 0)
    with pytest.raises(ExportError, match=rf"order {MAX_ORDER + 1}: .* covers order <= 16$"):
        function_for(ir.from_proto(model))


def _optimized_ops(model: onnx.ModelProto, tmp_path) -> list[str]:
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node]


@pytest.mark.parametrize(("variant", "order"), [("moments", 2), ("moments", 4), ("powers", 3)])
def test_fixed_function_runs_order_minus_one_products_and_no_scan(variant, order, tmp_path):
    """Issue 24: no doubling-scan rounds (Slice/Concat/Expand of full tensors), no run-time
    reshape targets, one token-sum MatMul per order, and the exact GELU fused by ONNX Runtime."""
    ops = _optimized_ops(_mixer_model(variant, "sigmoid", order, 0, fixed=True), tmp_path)
    assert not {"Slice", "Expand", "Reshape", "Erf", "ReduceSum"} & set(ops), ops
    assert ops.count("MatMul") == order and ops.count("Shape") <= 1
    if variant == "moments":
        assert ops.count("Gelu") == 1 and ops.count("Split") == 1
    generic = _optimized_ops(_mixer_model(variant, "sigmoid", order, 0), tmp_path)
    assert len(ops) < len(generic)


def test_function_for_fixes_the_body_when_every_node_agrees():
    model = ir.from_proto(_mixer_model("moments", "sigmoid", 3, 0))
    body = [n.op_type for n in ir.to_proto(function_for(model)).node]
    assert body.count("Mul") >= 2 and "Slice" not in body  # the fixed one: no scan rounds


def _with_dim(model: onnx.ModelProto, axis: int, name: str, values=("g",)) -> onnx.ModelProto:
    """``model`` with dimension ``axis`` of the named graph values made symbolic."""
    for value in list(model.graph.input) + list(model.graph.output):
        if value.name in values:
            value.type.tensor_type.shape.dim[axis].dim_param = name
    return model


def test_function_for_fixes_a_static_token_count_and_drops_shape_arithmetic(tmp_path):
    """Issue 24: every node's g is (B, N, C) with one static N, so the row of ones and the
    divisor are constants: ONNX Runtime runs no Shape or ConstantOfShape per call, even
    with a symbolic batch (which keeps it from folding them itself)."""
    batch = ("h", "g", "state", "count", "y", "state_out")
    model = _with_dim(_mixer_model("moments", "sigmoid", 2, 0), 0, "B", batch)
    function = ir.serde.serialize_function(function_for(ir.from_proto(model)))
    model.functions[0].CopyFrom(function)
    assert not {"Shape", "ConstantOfShape"} & {n.op_type for n in function.node}
    assert not {"Shape", "ConstantOfShape"} & set(_optimized_ops(model, tmp_path))
    model.functions[0].CopyFrom(_function("moments", "sigmoid", 2, 0, fixed=True))
    assert "Shape" in _optimized_ops(model, tmp_path)  # N read per call: ORT keeps the Shape
    symbolic = _with_dim(_mixer_model("moments", "sigmoid", 2, 0), 1, "N")  # g: (B, N, C)
    function = ir.serde.serialize_function(function_for(ir.from_proto(symbolic)))
    assert "Shape" in {n.op_type for n in function.node}  # N unknown: read from g per call


def test_fixed_function_refuses_an_empty_token_count():
    with pytest.raises(ValueError, match="token count must be >= 1"):
        fixed_polymixer_function(MixerAttrs("moments", 2, "sigmoid", 0), 0)
