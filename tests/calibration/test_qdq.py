"""The int8 artifact's graphs, read node by node: placement, per-channel weights, per-tensor
activations, the two encodings of one calibration, and the TensorRT lint."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pomexport.calibration.api import ORT_CPU, ORT_CPU_FILE
from pomexport.calibration.capture import CalibrationSet
from pomexport.calibration.placement import find_targets_proto, token_path
from pomexport.export.artifact.contract import DOMAIN, OP_TYPE
from pomexport.export.trt_lint import lint_model

TRT_FLAVORS = ("portable", "plugin")


def _load(artifact, flavor: str) -> onnx.ModelProto:
    return onnx.load(str(artifact.onnx_path(flavor)))


def _graph_index(model: onnx.ModelProto):
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return init, producer, consumers


def _qdq(model: onnx.ModelProto, op_type: str) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type == op_type]


def test_manifest_lists_the_three_int8_graphs_and_the_report(artifacts):
    _, int8 = artifacts
    assert int8.precision == "int8"
    assert int8.flavors == ("portable", "plugin", ORT_CPU)
    assert int8.onnx_path(ORT_CPU).name == ORT_CPU_FILE
    quant = int8.manifest["quantization"]
    assert {"calibration.json", "calibration.txt", "calibration-set.npz"} <= set(int8.files)
    data = CalibrationSet.load(int8.path("calibration-set.npz"))
    assert len(data) == quant["samples"] > 0
    assert quant["method"] == "percentile" and quant["quantized_layers"] > 0
    assert [e["dtype"] for e in int8.inputs if e["name"] == "x_t"] == ["float32"]


@pytest.fixture(params=["bundled", "stationary"])
def int8_artifact(request):
    """The session's int8 artifact, and the stationary-state one (issue 18: decay 0.6)."""
    if request.param == "stationary":
        return request.getfixturevalue("stationary_int8")[0]
    return request.getfixturevalue("artifacts")[1]


@pytest.mark.parametrize("flavor", TRT_FLAVORS)
def test_tensorrt_encoding_passes_the_trt_lint(int8_artifact, flavor):
    int8 = int8_artifact
    report = lint_model(onnx.load(str(int8.onnx_path(flavor)), load_external_data=False))
    assert report, [f.__dict__ for f in report.errors]


@pytest.mark.parametrize("flavor", (*TRT_FLAVORS, ORT_CPU))
def test_weights_per_channel_activations_per_tensor(artifacts, flavor):
    _, int8 = artifacts
    model = _load(int8, flavor)
    init, producer, consumers = _graph_index(model)
    weight_dq = [n for n in _qdq(model, "DequantizeLinear") if n.input[0] in init]
    assert weight_dq
    for dq in weight_dq:
        (gemm,) = consumers[dq.output[0]]
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        weight, scale, zero = (init[name] for name in dq.input)
        assert weight.dtype == np.int8 and zero.dtype == np.int8 and not zero.any()
        assert axis == (0 if gemm.op_type == "Conv" else 1)
        assert scale.shape == (weight.shape[axis],) and np.all(scale > 0)
        assert list(gemm.input).index(dq.output[0]) == 1
    want = np.uint8 if flavor == ORT_CPU else np.int8
    quantize = _qdq(model, "QuantizeLinear")
    assert quantize
    for q in quantize:
        scale, zero = init[q.input[1]], init[q.input[2]]
        assert scale.shape == () and zero.shape == () and zero.dtype == want
        if want == np.int8:
            assert zero == 0  # TensorRT: symmetric
        (dq,) = consumers[q.output[0]]
        assert dq.op_type == "DequantizeLinear" and list(dq.input[1:]) == list(q.input[1:])
        assert all(c.op_type in ("MatMul", "Gemm", "Conv") for c in consumers[dq.output[0]])


@pytest.mark.parametrize("flavor", (*TRT_FLAVORS, ORT_CPU))
def test_no_qdq_on_mixer_state_layernorm_or_embeddings(int8_artifact, flavor):
    """Nor on the discounted read of a stationary state: its Mul/Tanh/Div chain from
    ``state``/``count`` is off the token path, so a quantized source there fails below."""
    int8 = int8_artifact
    model = _load(int8, flavor)
    _, producer, consumers = _graph_index(model)
    import onnx_ir as ir

    tokens = token_path(ir.serde.deserialize_model(model).graph)
    mixers = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]
    assert mixers
    # the token output y may feed proj_out's Q (issue 24); nothing else of the op is touched
    touching_mixer = {name for n in mixers for name in (*n.input, *n.output[1:])}
    outputs = {n.output[0] for n in mixers}
    for q in _qdq(model, "QuantizeLinear"):
        source = q.input[0]
        assert source not in touching_mixer and source not in ("state", "count", "t")
        if source in outputs:
            readers = [r for dq in consumers[q.output[0]] for r in consumers[dq.output[0]]]
            assert [r.op_type for r in readers] == ["MatMul"], readers
        assert source in tokens  # never on the timestep/frame/label (sinusoid) path
        node = producer.get(source)
        assert node is None or node.op_type not in ("LayerNormalization", "Sin", "Cos")
    for dq in _qdq(model, "DequantizeLinear"):
        readers = consumers[dq.output[0]]
        assert not any(r.op_type in ("LayerNormalization", OP_TYPE) for r in readers)


def test_token_gemms_are_quantized_but_the_mixers_h_projections(artifacts):
    fp32, int8 = artifacts
    targets, excluded = find_targets_proto(_load(fp32, "plugin"))
    cfg = fp32.config
    # Per block after the first: proj_g, proj_out, mlp fc1, fc2; + the final projection.
    assert cfg.depth > 1 and len(targets) == 4 * (cfg.depth - 1) + 1
    assert sum("PolyMixer h projection" in why for why in excluded.values()) == cfg.depth
    assert sum("first PoM block" in why for why in excluded.values()) == 4
    (patch,) = [node for node, why in excluded.items() if "patch embedding" in why]
    assert patch.startswith("node_conv")
    report = json.loads((int8.root / "calibration.json").read_text())
    assert {x["node"] for x in report["layers"]} == {t.node for t in targets}
    for layer in report["layers"]:
        assert 0.0 <= layer["clipped_fraction"] < 0.01
        assert layer["amax"] <= max(-layer["observed_min"], layer["observed_max"]) * 1.001
        assert layer["sensitivity"] is None and layer["quantized"]  # no sweep asked for


def test_both_encodings_share_one_calibration(artifacts):
    _, int8 = artifacts
    trt, cpu = _load(int8, "portable"), _load(int8, ORT_CPU)
    trt_init, _, _ = _graph_index(trt)
    cpu_init, _, _ = _graph_index(cpu)
    trt_q = {q.input[0]: q for q in _qdq(trt, "QuantizeLinear")}
    cpu_q = {q.input[0]: q for q in _qdq(cpu, "QuantizeLinear")}
    assert trt_q.keys() == cpu_q.keys()
    for name, q in trt_q.items():
        amax = 127 * float(trt_init[q.input[1]])
        scale = float(cpu_init[cpu_q[name].input[1]])
        zero = int(cpu_init[cpu_q[name].input[2]])
        lo, hi = -zero * scale, (255 - zero) * scale
        # the uint8 range lies inside the int8 clipping range, and holds 0 exactly
        assert -amax - scale <= lo <= 0 <= hi <= amax + scale
