"""runtime/measure/roofline.py on small hand-made graphs whose GEMMs and other ops are known.

No timing is asserted (benchmarks hold the numbers): what must hold is which nodes count as
GEMMs, that each counts once per step however many runs the profile holds, that a GEMM rebuilt
alone computes what it computed inside the step, and that the shares cover the other ops.
"""

from __future__ import annotations

import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from pomexport.runtime.measure import roofline as rf
from pomexport.runtime.measure import roofline_gemms as rg

FAST = rf.RooflineSettings(batch=2, threads=1, repeats=3, warmup=1, rounds=2)


def _graph(gemms: int, seed: int = 0) -> onnx.ModelProto:
    """x [B, 16, 32] -> (MatMul W_i, then Sigmoid and Mul) x ``gemms`` -> y."""
    rng = np.random.default_rng(seed)
    nodes, inits, h = [], [], "x"
    for i in range(gemms):
        w = numpy_helper.from_array(rng.standard_normal((32, 32)).astype(np.float32), f"w{i}")
        inits.append(w)
        nodes += [
            helper.make_node("MatMul", [h, f"w{i}"], [f"m{i}"], name=f"mm{i}"),
            helper.make_node("Sigmoid", [f"m{i}"], [f"s{i}"], name=f"sig{i}"),
            helper.make_node("Mul", [f"m{i}", f"s{i}"], [f"h{i}"], name=f"mul{i}"),
        ]
        h = f"h{i}"
    nodes.append(helper.make_node("Identity", [h], ["y"], name="out"))
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["B", 16, 32])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["B", 16, 32])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


@pytest.mark.parametrize("gemms", [1, 3])
def test_each_gemm_counts_once_per_step_and_shares_cover_the_rest(gemms):
    row = rf.roofline(_graph(gemms).SerializeToString(), FAST)
    assert row["gemm_nodes_per_step"] == gemms  # the profile holds 4 runs: counted once
    assert row["step_ms"] > 0 and row["gemm_ms"] >= 0
    (op,) = row["gemm_by_op"]  # the graph's GEMMs are all MatMul
    assert op == "MatMul" and row["gemm_by_op"][op]["nodes"] == gemms
    assert row["gemm_by_op"][op]["ms"] == pytest.approx(row["gemm_ms"], abs=2e-3)
    assert row["gemm_back_to_back_ms"] > 0 and row["rounds"] == 2
    shares = row["non_gemm_share"]
    assert not set(shares) & rf.GEMM_OPS
    assert {"Sigmoid", "Mul"} <= set(shares) or {"QuickGelu"} <= set(shares)
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)


def _rebuilt(tmp_path, gemms: int):
    model = _graph(gemms)
    kernels = rf._profiled_nodes(model.SerializeToString(), FAST, tmp_path)
    nodes, initializers = rg.gemm_nodes(tmp_path / "optimized.onnx", kernels)
    weights = [numpy_helper.to_array(w) for w in model.graph.initializer]
    return nodes, initializers, weights


def test_a_gemm_rebuilt_alone_computes_what_it_computed_in_the_step(tmp_path):
    (node,), initializers, (w,) = _rebuilt(tmp_path, 1)
    alone = rg.single_node_model(node, initializers)
    x = np.random.default_rng(1).standard_normal((2, 16, 32)).astype(np.float32)
    (got,) = ort.InferenceSession(alone, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)


def test_gemms_back_to_back_run_every_gemm_of_the_step_in_order_on_shared_buffers(tmp_path):
    """Three GEMMs of one shape: one shared input, each node's own weight, three outputs
    bound to one buffer; run unbound, each output is its GEMM of the shared input."""
    nodes, initializers, weights = _rebuilt(tmp_path, 3)
    assert [n.node.input[1] for n in nodes] == ["w0", "w1", "w2"]  # step order
    model, inputs, outputs = rg.back_to_back_model(nodes, initializers)
    assert len(inputs) == 1 and len(outputs) == 3 and len(set(outputs.values())) == 1
    ((name, entry),) = inputs.items()
    assert entry == {"float": [2, 16, 32]}
    x = np.random.default_rng(2).standard_normal((2, 16, 32)).astype(np.float32)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for got, w in zip(session.run(None, {name: x}), weights, strict=True):
        np.testing.assert_allclose(got, x @ w, rtol=1e-5, atol=1e-5)
    rg.bound_runner(session, inputs, outputs)()  # the timed form: bound buffers, no copy


def test_best_of_rounds_interleaves_the_runs_and_keeps_each_ones_best():
    calls: list[str] = []
    slow = iter([0.02, 0.0, 0.0, 0.0, 0.0, 0.0])  # b's first round is the slow one

    def b() -> None:
        calls.append("b")
        time.sleep(next(slow, 0.0))

    settings = rf.RooflineSettings(repeats=1, warmup=0, rounds=3)
    best = rf.best_of_rounds({"a": lambda: calls.append("a"), "b": b}, settings)
    assert calls == ["a", "b"] * 3  # one after the other in every round
    assert set(best) == {"a", "b"} and best["b"] < 10  # round 1's 20 ms dropped


def test_op_shares_leave_gemms_out_and_sort_largest_first():
    events = [
        {"args": {"op_name": "MatMul"}, "dur": 900},
        {"args": {"op_name": "Add"}, "dur": 10},
        {"args": {"op_name": "LayerNormalization"}, "dur": 30},
        {"args": {"op_name": "Add"}, "dur": 10},
    ]
    assert rf.op_shares(events) == {"LayerNormalization": 0.6, "Add": 0.4}


def test_cli_roofline_rows_per_precision_and_batch(tmp_path):
    import json

    from click.testing import CliRunner

    from pomexport.cli.main import cli

    out = tmp_path / "roofline.json"
    args = "bench --roofline --presets tiny --precisions fp32,fp16 --batches 1,2 --threads 1"
    result = CliRunner().invoke(cli, [*args.split(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == rf.SCHEMA and report["settings"]["threads"] == 1
    rows = report["rows"]
    assert [(r["precision"], r["batch"]) for r in rows] == [
        ("fp32", 1), ("fp16", 1), ("fp32", 2), ("fp16", 2)
    ]  # fmt: skip
    for row in rows:
        assert row["preset"] == "tiny" and row["gemm_nodes_per_step"] > 0
        fp32 = next(r for r in rows if r["precision"] == "fp32" and r["batch"] == row["batch"])
        same_rounds = fp32["step_ms"] / row["step_ms"]
        assert row["speedup_over_fp32"] == pytest.approx(same_rounds, rel=1e-2)
        assert row["step_over_gemm"] == pytest.approx(row["step_ms"] / row["gemm_ms"], rel=1e-2)
        chain = row["step_ms"] / row["gemm_back_to_back_ms"]
        assert row["step_over_gemm_back_to_back"] == pytest.approx(chain, rel=1e-2)
        assert row["ort_speedup_over_torch"] > 0 and row["non_gemm_share"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("--precisions fp64", "precisions"),
        ("--batches 0", "batches"),
        ("--presets nope", "unknown preset"),
    ],
)
def test_cli_roofline_refuses_bad_options_in_one_line(args, message):
    from click.testing import CliRunner

    from pomexport.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "--roofline", *args.split()])
    assert result.exit_code == 1 and message in result.output


def test_variable_shapes_skip_the_constants_a_kernel_prepacked():
    """The profile leaves out prepacked weights (all of a MatMul's, only B of an int8
    MatMulIntegerToFloat's) and keeps other constants (an NCHWc Conv lists all)."""
    arrays = {
        "w8": np.zeros((384, 1536), np.int8),
        "a_scale": np.zeros((), np.float32),
        "w_scale": np.zeros(1536, np.float32),
        "a_zero": np.zeros((), np.uint8),
        "w_zero": np.zeros(1536, np.int8),
        "w": np.zeros((384, 4, 2, 2), np.float32),
        "b": np.zeros(384, np.float32),
    }
    inits = {name: numpy_helper.from_array(a, name) for name, a in arrays.items()}
    x8, x = {"uint8": [1, 256, 384]}, {"float": [1, 4, 32, 32]}
    int8 = [x8, {"float": []}, {"float": [1536]}, {"uint8": []}, {"int8": [1536]}]
    names = ["x", "w8", "a_scale", "w_scale", "a_zero", "w_zero"]
    assert rg._variable_shapes(names, int8, inits) == [x8]
    conv = [x, {"float": [384, 4, 2, 2]}, {"float": [384]}]
    assert rg._variable_shapes(["x", "w", "b"], conv, inits) == [x]
    assert rg._variable_shapes(["x", "w"], [x], inits) == [x]


def test_measure_times_several_models_in_the_same_rounds_and_keeps_them_apart():
    """Two graphs (1 and 3 GEMMs) measured together: one row each, each with its own GEMMs
    (a mix-up of their runs would give both the same count)."""
    models = {"one": _graph(1).SerializeToString(), "three": _graph(3, seed=1).SerializeToString()}
    rows = rf.measure(models, FAST)
    assert set(rows) == {"one", "three"}
    assert rows["one"]["gemm_nodes_per_step"] == 1 and rows["three"]["gemm_nodes_per_step"] == 3
    assert rows["three"]["gemm_by_op"]["MatMul"]["nodes"] == 3
    assert "torch_fp32_ms" not in rows["one"]  # no torch step given
