"""The fp16 artifact: precision baked into the graph (docs/design.md §4), close to fp32."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
from onnx import TensorProto

from pomexport.export.ranges import FP16_MAX, overflowing
from pomexport.export.trajectory import record_trajectory

# Tolerances of fp16 vs fp32 on sampling-trajectory inputs (|v| is O(1-5), |state_out| O(100)).
V_ATOL = 2e-2
STATE_RTOL = 2e-3  # relative to max |state_out|: the state path is fp32, h/g arrive in fp16


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _fp16_feed(feed: dict) -> dict:
    return {**feed, "x_t": feed["x_t"].astype(np.float16)}


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    return types


def test_graph_io_dtypes(fp16_artifact):
    for flavor in ("portable", "plugin"):
        model = onnx.load(str(fp16_artifact.onnx_path(flavor)))
        io = {
            v.name: v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]
        }
        assert io["x_t"] == io["v"] == TensorProto.FLOAT16
        assert io["t"] == io["state"] == io["count"] == io["state_out"] == TensorProto.FLOAT
    assert [i["dtype"] for i in fp16_artifact.inputs][:2] == ["float16", "float32"]


def test_fp32_islands_and_fp16_gemms(fp16_artifact):
    model = onnx.load(str(fp16_artifact.onnx_path("plugin")))
    types = _types(model)
    nodes = model.graph.node
    for node in nodes:
        if node.op_type == "PolyMixer":
            h, g, state, count = (types[name] for name in node.input[:4])
            assert (h, g, state, count) == (10, 10, 1, 1)
            assert types[node.output[0]] == 10 and types[node.output[1]] == 1
        if node.op_type == "LayerNormalization":
            assert types[node.input[0]] == TensorProto.FLOAT  # statistics in fp32
        if node.op_type in ("Sin", "Cos"):
            assert types[node.output[0]] == TensorProto.FLOAT  # sinusoid embeddings
    gemms = [n for n in nodes if n.op_type in ("MatMul", "Gemm", "Conv")]
    assert gemms and all(types[n.output[0]] == TensorProto.FLOAT16 for n in gemms)


def test_fp16_matches_fp32(models, fp16_artifact, fp32_artifacts):
    feeds = record_trajectory(models["moments"], frames=2, steps=2, batch=3, seed=1)
    s32 = _session(fp32_artifacts["moments"].onnx_path("portable"))
    s16 = _session(fp16_artifact.onnx_path("portable"))
    worst_v = worst_s = 0.0
    for feed in feeds:
        v32, st32 = s32.run(None, feed)
        v16, st16 = s16.run(None, _fp16_feed(feed))
        assert v16.dtype == np.float16 and st16.dtype == np.float32
        worst_v = max(worst_v, float(np.abs(v16.astype(np.float32) - v32).max()))
        worst_s = max(worst_s, float(np.abs(st16 - st32).max() / np.abs(st32).max()))
    assert worst_v <= V_ATOL, f"fp16 v max abs error {worst_v:.2e}"
    assert worst_s <= STATE_RTOL, f"fp16 state_out max rel error {worst_s:.2e}"


def test_fp16_reference_evaluator(models, fp16_artifact, fp32_artifacts):
    """onnx.reference computes every fp16 op in fp16 (ORT CPU may upcast some kernels)."""
    from onnx.reference import ReferenceEvaluator

    feed = record_trajectory(models["moments"], frames=1, steps=2, batch=1, seed=2)[-1]
    v32, st32 = _session(fp32_artifacts["moments"].onnx_path("portable")).run(None, feed)
    ref = ReferenceEvaluator(str(fp16_artifact.onnx_path("portable")))
    v16, st16 = ref.run(None, _fp16_feed(feed))
    assert v16.dtype == np.float16 and st16.dtype == np.float32
    assert float(np.abs(v16.astype(np.float32) - v32).max()) <= V_ATOL
    assert float(np.abs(st16 - st32).max() / np.abs(st32).max()) <= STATE_RTOL


def test_overflow_threshold():
    ranges = {"small": 100.0, "edge": 0.5 * FP16_MAX, "big": 0.5 * FP16_MAX + 1.0}
    assert overflowing(ranges) == {"big"}


def test_overflowing_tensors_stay_fp32(models, fp32_artifacts):
    """Tensors over the threshold (lowered here so that some are) stay fp32, and it runs."""
    from pomexport.export.flavors import add_function
    from pomexport.export.fp16 import to_fp16
    from pomexport.export.ranges import tensor_absmax

    fp32 = ir.load(fp32_artifacts["moments"].onnx_path("plugin"))
    feeds = record_trajectory(models["moments"], frames=1, steps=1, batch=2)
    absmax = tensor_absmax(fp32, feeds)
    kept = overflowing(absmax, fraction=20.0 / FP16_MAX)  # everything above |20|
    assert kept and len(kept) < len(absmax)
    fp16 = ir.to_proto(add_function(to_fp16(fp32, kept)))
    onnx.checker.check_model(fp16, full_check=True)
    types = _types(fp16)
    assert all(types[name] == TensorProto.FLOAT for name in kept)
    session = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    v16, _ = session.run(None, _fp16_feed(feeds[0]))
    v32, _ = _session(fp32_artifacts["moments"].onnx_path("portable")).run(None, feeds[0])
    assert float(np.abs(v16.astype(np.float32) - v32).max()) <= V_ATOL


def test_fp16_pass_powers_variant(models, fp32_artifacts):
    """The powers graph (hardsigmoid gate, selection heads, fp32 coeff) through the same pass."""
    from pomexport.export.flavors import add_function
    from pomexport.export.fp16 import to_fp16

    fp32 = ir.load(fp32_artifacts["powers"].onnx_path("plugin"))
    fp16 = ir.to_proto(add_function(to_fp16(fp32)))
    onnx.checker.check_model(fp16, full_check=True)
    types = _types(fp16)
    mixers = [n for n in fp16.graph.node if n.op_type == "PolyMixer"]
    assert all(types[n.input[4]] == TensorProto.FLOAT for n in mixers)  # coeff stays fp32
    s16 = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    s32 = _session(fp32_artifacts["powers"].onnx_path("portable"))
    for feed in record_trajectory(models["powers"], frames=2, steps=1, batch=2, seed=3):
        v32, st32 = s32.run(None, feed)
        v16, st16 = s16.run(None, _fp16_feed(feed))
        assert float(np.abs(v16.astype(np.float32) - v32).max()) <= V_ATOL
        assert float(np.abs(st16 - st32).max() / np.abs(st32).max()) <= STATE_RTOL


def test_fp16_pass_keeps_the_stationary_read_fp32(stationary_artifact):
    """Issue 18: the discounted read of ``state``/``count`` (Mul, Tanh, Div: graph arithmetic
    between the inputs and the op) stays fp32 like the rest of the state path, and the fp16
    graph (the exporter's pass, overflow check included) matches fp32 over 4 frames, past
    max_frame_index 2, within the bounds above; it lints clean for TensorRT."""
    from pomexport.export.flavors import add_function
    from pomexport.export.fp16 import to_fp16
    from pomexport.export.ranges import tensor_absmax
    from pomexport.export.trt_lint import lint_model

    art, model = stationary_artifact
    fp32 = ir.load(art.onnx_path("plugin"))
    feeds = record_trajectory(model, frames=4, steps=2, batch=2, seed=4)
    fp16 = to_fp16(fp32, overflowing(tensor_absmax(fp32, feeds)))
    assert lint_model(ir.to_proto(fp16)), [f.__dict__ for f in lint_model(ir.to_proto(fp16)).errors]
    fp16 = ir.to_proto(add_function(fp16))
    types = _types(fp16)
    mixers = [n for n in fp16.graph.node if n.op_type == "PolyMixer"]
    assert mixers and all(types[n.input[2]] == types[n.input[3]] == 1 for n in mixers)
    # The discount's Tanh reads count alone (the GELUs' read x_t through the mixers).
    tanh = [n for n in fp16.graph.node if n.op_type == "Tanh" and "x_t" not in _ancestors(fp16, n)]
    assert len(tanh) == 1 and types[tanh[0].output[0]] == TensorProto.FLOAT
    assert "count" in _ancestors(fp16, tanh[0])
    s16 = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    s32 = _session(art.onnx_path("portable"))
    worst_v = worst_s = 0.0
    for feed in feeds:
        v32, st32 = s32.run(None, feed)
        v16, st16 = s16.run(None, _fp16_feed(feed))
        worst_v = max(worst_v, float(np.abs(v16.astype(np.float32) - v32).max()))
        worst_s = max(worst_s, float(np.abs(st16 - st32).max() / np.abs(st32).max()))
    assert worst_v <= V_ATOL, f"fp16 v max abs error {worst_v:.2e}"
    assert worst_s <= STATE_RTOL, f"fp16 state_out max rel error {worst_s:.2e}"


def _ancestors(model: onnx.ModelProto, node: onnx.NodeProto) -> set[str]:
    """Every tensor name ``node`` depends on (graph inputs included)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    seen: set[str] = set()
    stack = list(node.input)
    while stack:
        name = stack.pop()
        if name and name not in seen:
            seen.add(name)
            stack.extend(producer[name].input if name in producer else ())
    return seen
