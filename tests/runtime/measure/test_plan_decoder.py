"""runtime/measure/plan_decoder.py (issue 21): ``pomexport plan ARTIFACT`` with a decoder stage
adds its rows, each equal to a hand computation from the artifact's decoder graphs; an
artifact without a decoder plans as its model config did."""

from __future__ import annotations

import json

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import numpy_helper

from pomexport.cli.main import cli
from pomexport.export.artifact import load_artifact
from pomexport.models.config import PoMDiTConfig
from pomexport.runtime.measure.plan import MIB, TARGETS, plan, plan_models


def _nbytes(value) -> int:
    tensor = value.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
    return int(np.prod([d.dim_value for d in tensor.shape.dim])) * np.dtype(dtype).itemsize


def _largest_node(model) -> int:
    graph = onnx.shape_inference.infer_shapes(model).graph
    values = {v.name: v for v in (*graph.input, *graph.output, *graph.value_info)}
    inits = {i.name for i in graph.initializer}
    return max(
        sum(
            _nbytes(values[n])
            for n in {*node.input, *node.output}
            if n and n not in inits and n in values
        )
        for node in graph.node
    )


def test_the_wan_decoder_rows_equal_a_hand_computation(decoders):
    root = decoders.artifact("wan").root
    graphs = {r: onnx.load(root / "decoder" / f"{r}.onnx") for r in ("first", "next")}
    weights = sum(
        numpy_helper.to_array(i).nbytes for g in graphs.values() for i in g.graph.initializer
    )
    first, nxt = graphs["first"].graph, graphs["next"].graph
    io = _nbytes(first.input[0]) + _nbytes(first.output[0]) + _nbytes(nxt.output[0])
    caches = [v for v in nxt.input if v.name.startswith("cache_")]
    assert len(caches) == len(nxt.input) - 1 and caches  # latent + every cache
    per_stream = 2 * sum(_nbytes(v) for v in caches)  # ping-pong: two sets per stream
    activations = max(_largest_node(g) for g in graphs.values())

    target = TARGETS["orin-nano-8gb"]
    (budget,) = plan_models([str(root)], target, ["fp16"], streams=3)
    d = budget.decoder
    assert (d.kind, d.precision) == ("wan-stream", "fp32")
    assert (d.weights, d.io, d.activations) == (weights, io, activations)
    assert (d.cache_per_stream, d.cache) == (per_stream, 3 * per_stream)
    assert d.total == weights + activations + io + 3 * per_stream
    cfg = PoMDiTConfig.from_dict(load_artifact(root).manifest["model"]["config"])
    step = plan(cfg, target, "fp16", streams=3, model=str(root))
    assert budget.run_total == step.run_total + d.total
    assert budget.build_total == 3 * max(step.weights, weights) + 1024 * MIB + step.overhead
    assert budget.as_dict()["decoder"] == {**d.as_dict(), "total": d.total}


def test_an_image_decoder_has_no_cache(decoders):
    (budget,) = plan_models([str(decoders.artifact("kl").root)], TARGETS["thor"], ["fp32"])
    assert budget.decoder.kind == "image" and budget.decoder.cache == 0
    assert budget.decoder.weights > 0 and budget.decoder.activations > 0


def test_an_artifact_without_a_decoder_plans_as_its_config(ort_artifact):
    artifact, _ = ort_artifact
    target = TARGETS["orin-nano-8gb"]
    (budget,) = plan_models([str(artifact.root)], target, ["fp16"], streams=2)
    cfg = PoMDiTConfig.from_dict(artifact.manifest["model"]["config"])
    assert budget == plan(cfg, target, "fp16", streams=2, model=str(artifact.root))
    assert budget.decoder is None and "decoder" not in budget.as_dict()


def test_the_cli_prints_the_decoder_rows(decoders):
    root = str(decoders.artifact("wan").root)
    result = CliRunner().invoke(cli, ["plan", root, "--precision", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["budgets"]
    assert row["decoder"]["kind"] == "wan-stream" and row["decoder"]["cache"] > 0
    table = CliRunner().invoke(cli, ["plan", root, "--precision", "fp32"])
    assert table.exit_code == 0 and "+ decoder" in table.output
