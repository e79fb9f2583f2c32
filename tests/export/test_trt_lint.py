"""The TensorRT lint on tiny hand-built ONNX graphs (onnx.helper), one behaviour per test."""

from __future__ import annotations

import pytest
from onnx import TensorProto as T
from onnx import helper as h

from pomexport.errors import ConfigError
from pomexport.export._plugin_lookup import Lookup, LookupRule, resolve
from pomexport.export.artifact.contract import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE
from pomexport.export.trt_lint import lint_model, load_op_table

OPSET = 18


def _model(nodes, inputs, outputs, inits=(), functions=(), domains=()):
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [h.make_opsetid("", OPSET), *(h.make_opsetid(d, 1) for d in domains)]
    return h.make_model(graph, opset_imports=opsets, functions=list(functions))


def _vi(name, dtype, shape):
    return h.make_tensor_value_info(name, dtype, shape)


def _errors(report, version=None):
    return [f for f in report.errors if version is None or f.trt_version == version]


def _polymixer_model(with_function: bool, plugin_namespace: str | None = None):
    """h, g (B, N, C) fp32 and state (B, C), count (B,) -> y, state_out through PolyMixer."""
    b, n, c = "B", 4, 6
    attrs = {"variant": "moments", "order": 2, "gate": "sigmoid", "sel_heads": 0}
    if plugin_namespace is not None:
        attrs["plugin_namespace"] = plugin_namespace
    node = h.make_node(
        OP_TYPE, ["h", "g", "state", "count"], ["y", "state_out"], "mixer0", domain=DOMAIN, **attrs
    )
    body = [  # a stand-in decomposition: y = sigmoid(g) * h, state_out = state + sum_n h
        h.make_node("Sigmoid", ["g"], ["gate"]),
        h.make_node("Mul", ["gate", "h"], ["y"]),
        h.make_node("Constant", [], ["axes"], value=h.make_tensor("a", T.INT64, [1], [1])),
        h.make_node("ReduceSum", ["h", "axes"], ["total"], keepdims=0),
        h.make_node("Add", ["state", "total"], ["state_out"]),
    ]
    function = h.make_function(
        DOMAIN, OP_TYPE, ["h", "g", "state", "count"], ["y", "state_out"], body,
        [h.make_opsetid("", OPSET)], attributes=list(attrs),
    )  # fmt: skip
    inputs = [_vi("h", T.FLOAT, [b, n, c]), _vi("g", T.FLOAT, [b, n, c])]
    inputs += [_vi("state", T.FLOAT, [b, c]), _vi("count", T.FLOAT, [b])]
    outputs = [_vi("y", T.FLOAT, [b, n, c]), _vi("state_out", T.FLOAT, [b, c])]
    functions = [function] if with_function else []
    return _model([node], inputs, outputs, functions=functions, domains=[DOMAIN])


BOUNDS = {"B": (1, 2, 4)}


def test_table_cites_its_source_and_covers_both_versions():
    table = load_op_table()
    for version in ("10.3", "11"):
        spec = table["versions"][version]
        assert spec["source"]["repo"] == "onnx/onnx-tensorrt"
        assert spec["source"]["path"] == "docs/operators.md"
        assert spec["ops"]["MatMul"]["supported"] and "float16" in spec["ops"]["MatMul"]["types"]
        assert not spec["ops"]["MatMulInteger"]["supported"]
    assert "pomexport::PolyMixer" in table["custom_ops"]


def test_flags_unsupported_op_and_dtype():
    nodes = [
        h.make_node("MatMul", ["a", "b"], ["ab"], "int_matmul"),  # MatMul has no int32 kernel
        h.make_node("Det", ["m"], ["d"], "det"),  # not supported at all
    ]
    inputs = [_vi("a", T.INT32, [2, 3]), _vi("b", T.INT32, [3, 2]), _vi("m", T.FLOAT, [3, 3])]
    report = lint_model(_model(nodes, inputs, [_vi("ab", T.INT32, None), _vi("d", T.FLOAT, None)]))
    assert not report
    for version in ("10.3", "11"):
        flagged = {(f.node, f.op) for f in _errors(report, version)}
        assert flagged == {("int_matmul", "MatMul"), ("det", "Det")}
    dtype_error = next(f for f in report.errors if f.op == "MatMul")
    assert "int32" in dtype_error.message


def test_flags_unknown_custom_op():
    node = h.make_node("Frobnicate", ["x"], ["y"], "frob", domain="acme")
    model = _model([node], [_vi("x", T.FLOAT, [2])], [_vi("y", T.FLOAT, [2])], domains=["acme"])
    report = lint_model(model)
    assert {(f.node, f.op, f.trt_version) for f in report.errors} == {
        ("frob", "acme::Frobnicate", "10.3"),
        ("frob", "acme::Frobnicate", "11"),
    }


def _mixer_notes(report, version):
    key = f"{DOMAIN}::{OP_TYPE}"
    return [f for f in report.findings if f.op == key and f.trt_version == version]


def test_accepts_polymixer_with_local_function():
    report = lint_model(_polymixer_model(with_function=True), dim_bounds=BOUNDS)
    assert report, [str(f) for f in report.errors]
    assert report.warnings == []
    # No plugin_namespace on the node: no parser lets a loaded plugin take the function's place.
    for version in ("10.3", "11"):
        [note] = _mixer_notes(report, version)
        assert note.severity == "info" and "whether the PolyMixer plugin is loaded or not" in (
            note.message
        )


def test_polymixer_plugin_flavor_resolves_on_every_version():
    report = lint_model(_polymixer_model(False, plugin_namespace=DOMAIN), dim_bounds=BOUNDS)
    assert report and report.warnings == []
    for version in ("10.3", "11"):
        [note] = _mixer_notes(report, version)
        assert note.severity == "info"
        assert note.message.startswith("resolved to the PolyMixer plugin in namespace 'pomexport'")
        assert "domain" not in note.message


def test_polymixer_without_plugin_namespace_is_not_found_on_trt_10_3():
    """10.3 looks only under the attribute (default ""); 11 falls back to the node's domain."""
    report = lint_model(_polymixer_model(with_function=False), dim_bounds=BOUNDS)
    [error] = _errors(report)
    assert error.trt_version == "10.3" and error.message.startswith("Plugin not found")
    assert "namespace(s) ''" in error.message and "plugin_namespace='pomexport'" in error.message
    [note] = _mixer_notes(report, "11")
    assert note.severity == "info" and "through the node's domain" in note.message


# The parser's verdict per version, read from the onnx-tensorrt sources (the commits and lines
# are in trt_onnx_ops.json "plugin_lookup"; export/data/README.md explains them):
#   10.3  builtin -> local function -> FallbackPluginImporter(plugin_namespace attr, default "")
#   10.13 builtin -> local function unless isNodeInPluginRegistry(attr ns) -> Fallback(attr, domain)
#   11    plugin first if (attr present or kENABLE_PLUGIN_OVERRIDE) and registered under attr ns,
#         else builtin -> local function -> Fallback(attr, domain)
# (version, local function, plugin_namespace attribute, registered namespaces, override) -> verdict
P, F = "pomexport", None
PARSER_TABLE = [
    # plugin flavor, our library (namespace pomexport) loaded
    ("10.3", False, P, {P}, False, Lookup("plugin", P, (P,))),
    ("10.13", False, P, {P}, False, Lookup("plugin", P, (P,))),
    ("11", False, P, {P}, False, Lookup("plugin", P, (P,))),
    # no attribute: 10.3 never looks at the domain; 10.13 and 11 fall back to it
    ("10.3", False, F, {P}, False, Lookup("unresolved", None, ("",))),
    ("10.13", False, F, {P}, False, Lookup("plugin", P, ("", P))),
    ("11", False, F, {P}, False, Lookup("plugin", P, ("", P))),
    # the library not loaded: "Plugin not found" everywhere
    ("10.3", False, P, set(), False, Lookup("unresolved", None, (P,))),
    ("10.13", False, P, set(), False, Lookup("unresolved", None, (P,))),
    ("11", False, F, set(), False, Lookup("unresolved", None, ("", P))),
    # an attribute naming another namespace: 10.3 fails, 10.13/11 recover through the domain
    ("10.3", False, "acme", {P}, False, Lookup("unresolved", None, ("acme",))),
    ("11", False, "acme", {P}, False, Lookup("plugin", P, ("acme", P))),
    # portable flavor (local function, no attribute) with our library loaded: the function
    ("10.3", True, F, {P}, False, Lookup("local_function")),
    ("10.13", True, F, {P}, False, Lookup("local_function")),
    ("11", True, F, {P}, False, Lookup("local_function")),
    ("11", True, F, {P}, True, Lookup("local_function")),  # override looks under "" only
    # ... but a creator in the default namespace "" (the old two-creator library) took the
    # function's place on 10.13 (isNodeInPluginRegistry), and on 11 under the override flag
    ("10.3", True, F, {""}, False, Lookup("local_function")),
    ("10.13", True, F, {""}, False, Lookup("plugin", "")),
    ("11", True, F, {""}, False, Lookup("local_function")),
    ("11", True, F, {""}, True, Lookup("plugin", "")),
    # a function and the attribute: 10.3 keeps the function, 10.13 and 11 take the plugin
    ("10.3", True, P, {P}, False, Lookup("local_function")),
    ("10.13", True, P, {P}, False, Lookup("plugin", P)),
    ("11", True, P, {P}, False, Lookup("plugin", P)),
    ("11", True, P, set(), False, Lookup("local_function")),
]


@pytest.mark.parametrize(
    ("version", "function", "attribute", "registered", "override", "want"), PARSER_TABLE
)
def test_lookup_rules_match_the_parser_sources(
    version, function, attribute, registered, override, want
):
    rule = LookupRule.from_table(load_op_table(), version)
    got = resolve(
        rule,
        domain=DOMAIN,
        attribute=attribute,
        has_function=function,
        registered=registered,
        override=override,
    )
    assert got == want


def test_every_lookup_rule_cites_its_sources():
    table = load_op_table()
    assert set(table["plugin_lookup"]["rules"]) == {"10.3", "10.13", "11"}
    for version, rule in table["plugin_lookup"]["rules"].items():
        assert any("onnx/onnx-tensorrt" in source for source in rule["sources"]), version
    for version, spec in table["versions"].items():
        assert spec["plugin_lookup"] in table["plugin_lookup"]["rules"], version
    assert table["custom_ops"][f"{DOMAIN}::{OP_TYPE}"]["plugin"]["namespace"] == PLUGIN_NAMESPACE


def test_lint_verdicts_follow_the_rules():
    """The lint's per-version messages agree with resolve() on both flavors' nodes."""
    cases = {
        (False, DOMAIN): "resolved to the PolyMixer plugin",
        (True, None): "inlines its local function",
    }
    for (function, attribute), phrase in cases.items():
        report = lint_model(_polymixer_model(function, attribute), dim_bounds=BOUNDS)
        for version in ("10.3", "11"):
            [note] = _mixer_notes(report, version)
            assert phrase in note.message, (version, note.message)


def test_polymixer_state_must_stay_fp32():
    model = _polymixer_model(with_function=False, plugin_namespace=DOMAIN)
    model.graph.input[2].type.tensor_type.elem_type = T.FLOAT16
    report = lint_model(model, dim_bounds=BOUNDS)
    assert any("state path must stay float32" in f.message for f in report.errors)


def _shape_chain_model(batch):
    nodes = [
        h.make_node("Shape", ["x"], ["s"]),
        h.make_node("Gather", ["s", "zero"], ["b"], axis=0),
        h.make_node("Concat", ["b", "rest"], ["shape"], axis=0),
        h.make_node("Reshape", ["x", "shape"], ["y"], "flatten"),
    ]
    inits = [h.make_tensor("zero", T.INT64, [1], [0]), h.make_tensor("rest", T.INT64, [1], [32])]
    x = _vi("x", T.FLOAT, [batch, 4, 8])
    return _model(nodes, [x], [_vi("y", T.FLOAT, None)], inits)


def test_warns_on_int64_shape_chain():
    report = lint_model(_shape_chain_model("B"), dim_bounds=BOUNDS)
    assert report  # a warning, not an error
    chains = [f for f in report.warnings if "shape arithmetic" in f.message]
    assert [(f.node, f.op) for f in chains] == [("flatten", "Reshape")]
    assert "Shape→Gather→Concat→Reshape" in chains[0].message
    # With a static input the chain folds to a constant at build time: nothing to warn about.
    assert lint_model(_shape_chain_model(2)).warnings == []


def test_warns_on_runtime_int64_arithmetic_only():
    nodes = [
        h.make_node("Mul", ["frame_index", "tokens"], ["offset"], "offset"),
        h.make_node("Add", ["tokens", "tokens"], ["twice"], "folded"),
    ]
    inits = [h.make_tensor("tokens", T.INT64, [], [16])]
    inputs = [_vi("frame_index", T.INT64, [3])]
    outputs = [_vi("offset", T.INT64, None), _vi("twice", T.INT64, None)]
    report = lint_model(_model(nodes, inputs, outputs, inits))
    assert [f.node for f in report.warnings] == ["offset"]


def test_dynamic_dims_need_profile_bounds():
    model = _shape_chain_model("B")
    unbounded = [f for f in lint_model(model).warnings if "optimization-profile" in f.message]
    assert [f.node for f in unbounded] == ["x"]
    bad = lint_model(model, dim_bounds={"B": (4, 2, 8)})
    assert any("min <= opt <= max" in f.message for f in bad.errors)


def test_restrictions_differ_between_versions():
    """Pad with run-time `axes`: TensorRT 10.3 needs an initializer, 10.4+ takes a tensor."""
    nodes = [h.make_node("Pad", ["x", "pads", "", "axes"], ["y"], "pad")]
    inputs = [_vi("x", T.FLOAT, [2, 3]), _vi("axes", T.INT64, [1])]
    inits = [h.make_tensor("pads", T.INT64, [2], [1, 1])]
    report = lint_model(_model(nodes, inputs, [_vi("y", T.FLOAT, None)], inits))
    assert [(f.node, f.trt_version) for f in report.errors] == [("pad", "10.3")]


def test_mixed_precision_batchnorm_only_from_10_7():
    params = [h.make_tensor(n, T.FLOAT, [3], [1.0, 1.0, 1.0]) for n in ("s", "b", "m", "v")]
    node = h.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], "bn")
    model = _model([node], [_vi("x", T.FLOAT16, [1, 3, 4])], [_vi("y", T.FLOAT16, None)], params)
    report = lint_model(model)
    assert [(f.node, f.trt_version) for f in report.errors] == [("bn", "10.3")]


def test_warns_on_double_and_int8_outside_qdq():
    nodes = [
        h.make_node("Cast", ["x"], ["x64"], "to_double", to=T.DOUBLE),
        h.make_node("Cast", ["x64"], ["x32"], "back"),
        h.make_node("Relu", ["q"], ["r"], "int8_relu"),
    ]
    nodes[1].attribute.append(h.make_attribute("to", T.FLOAT))
    inputs = [_vi("x", T.FLOAT, [2]), _vi("q", T.INT8, [2])]
    outputs = [_vi("x32", T.FLOAT, None), _vi("r", T.INT8, None)]
    report = lint_model(_model(nodes, inputs, outputs))
    messages = [f.message for f in report.warnings]
    assert any("x64 is float64" in m for m in messages)
    assert any("q is int8 outside Q/DQ" in m for m in messages)


def test_unknown_trt_version_is_a_config_error():
    with pytest.raises(ConfigError, match="9.9"):
        lint_model(_shape_chain_model(2), trt_versions=("9.9",))


def test_squeeze_without_axes_needs_a_static_shape_before_11_5():
    def model(shape):
        node = h.make_node("Squeeze", ["x"], ["y"], "squeeze_all")
        return _model([node], [_vi("x", T.FLOAT, shape)], [_vi("y", T.FLOAT, None)])

    report = lint_model(model(["B", 1, 4]), dim_bounds=BOUNDS)
    assert [(f.node, f.trt_version) for f in report.errors] == [("squeeze_all", "10.3")]
    assert lint_model(model([2, 1, 4]))


def test_function_call_must_pass_every_function_input():
    """TensorRT's LocalFunctionImporter asserts node and function input counts are equal."""
    model = _polymixer_model(with_function=True)
    model.functions[0].input.append("coeff")  # the function takes 5, the node passes 4
    report = lint_model(model, dim_bounds=BOUNDS)
    flagged = {(f.node, f.trt_version) for f in report.errors}
    assert flagged == {("mixer0", "10.3"), ("mixer0", "11")}
