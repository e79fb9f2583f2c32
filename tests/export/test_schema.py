"""The registered OpSchema: checker and shape inference understand PolyMixer nodes."""

from __future__ import annotations

import onnx
from onnx import TensorProto, defs, helper

from pomexport.export.schema import register_schema


def test_registration_is_idempotent():
    register_schema()
    register_schema()
    schema = defs.get_schema("PolyMixer", 1, "pomexport")
    assert [i.name for i in schema.inputs] == ["h", "g", "state", "count", "coeff"]
    assert [o.name for o in schema.outputs] == ["y", "state_out"]
    assert set(schema.attributes) == {"variant", "order", "gate", "sel_heads", "plugin_namespace"}
    # TensorRT's lookup attribute: optional (only plugin-flavor nodes carry it), no default.
    assert not schema.attributes["plugin_namespace"].required


def test_shape_inference_through_the_op():
    register_schema()
    node = helper.make_node(
        "PolyMixer", ["h", "g", "state", "count"], ["y", "s"], domain="pomexport", order=2
    )
    relu = helper.make_node("Relu", ["y"], ["z"])
    graph = helper.make_graph(
        [node, relu],
        "g",
        [
            helper.make_tensor_value_info("h", TensorProto.FLOAT16, ["B", 16, 8]),
            helper.make_tensor_value_info("g", TensorProto.FLOAT16, ["B", 16, 8]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, ["B", 8]),
            helper.make_tensor_value_info("count", TensorProto.FLOAT, ["B"]),
        ],
        [
            helper.make_tensor_value_info("z", TensorProto.FLOAT16, ["B", 16, 8]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, ["B", 8]),
        ],
    )
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid("pomexport", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    y = next(v for v in inferred.graph.value_info if v.name == "y")
    assert y.type.tensor_type.elem_type == TensorProto.FLOAT16
    dims = [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim]
    assert dims == ["B", 16, 8]
