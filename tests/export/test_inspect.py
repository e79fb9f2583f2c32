"""inspect_artifact / precision_mix on tiny hand-built graphs, the CLI, and a real export."""

from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from pomexport.cli.main import cli
from pomexport.errors import ArtifactError
from pomexport.export.inspect import inspect_artifact, precision_mix


def _weight(name, dtype, shape):
    import numpy as np

    return numpy_helper.from_array(np.ones(shape, dtype=dtype), name)


def _two_matmuls() -> onnx.ModelProto:
    """a (B, 4, 8) fp16 @ (8, 16) and c (B, 3, 5) fp32 @ (5, 7): 2·B·4·8·16 and 2·B·3·5·7."""
    import numpy as np

    nodes = [
        h.make_node("MatMul", ["a", "w16"], ["y16"], "mm16"),
        h.make_node("MatMul", ["c", "w32"], ["y32"], "mm32"),
    ]
    inits = [_weight("w16", np.float16, (8, 16)), _weight("w32", np.float32, (5, 7))]
    inputs = [
        h.make_tensor_value_info("a", T.FLOAT16, ["B", 4, 8]),
        h.make_tensor_value_info("c", T.FLOAT, ["B", 3, 5]),
    ]
    outputs = [
        h.make_tensor_value_info("y16", T.FLOAT16, ["B", 4, 16]),
        h.make_tensor_value_info("y32", T.FLOAT, ["B", 3, 7]),
    ]
    graph = h.make_graph(nodes, "two_matmuls", inputs, outputs, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])


def test_flop_mix_of_one_fp16_and_one_fp32_matmul_is_exact():
    mix = precision_mix(_two_matmuls(), batch=3)
    assert mix.flops == {"float16": 2 * 3 * 4 * 8 * 16, "float32": 2 * 3 * 3 * 5 * 7}
    assert mix.unresolved == []
    assert mix.shares["float16"] == pytest.approx(3072 / (3072 + 630), abs=1e-12)


def test_gemm_conv_and_dequantized_inputs():
    """Conv (1,2,5,5) * (4,2,3,3) -> (1,4,3,3); a MatMul fed by DequantizeLinear counts as int8."""
    import numpy as np

    nodes = [
        h.make_node("Conv", ["x", "k"], ["y"], "conv"),
        h.make_node("DequantizeLinear", ["wq", "scale"], ["w"], "dq"),
        h.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
        h.make_node("MatMul", ["v", "wt"], ["z"], "qmm"),
        h.make_node("Gemm", ["v", "g"], ["u"], "gemm", transB=1),
    ]
    inits = [
        _weight("k", np.float32, (4, 2, 3, 3)),
        numpy_helper.from_array(np.ones((6, 5), np.int8), "wq"),
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        _weight("g", np.float32, (9, 5)),
    ]
    inputs = [
        h.make_tensor_value_info("x", T.FLOAT, [1, 2, 5, 5]),
        h.make_tensor_value_info("v", T.FLOAT, [2, 5]),
    ]
    outputs = [h.make_tensor_value_info(n, T.FLOAT, None) for n in ("y", "z", "u")]
    graph = h.make_graph(nodes, "g", inputs, outputs, inits)
    mix = precision_mix(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)]))
    conv = 2 * (1 * 4 * 3 * 3) * (2 * 3 * 3)
    gemm = 2 * (2 * 9) * 5
    assert mix.flops == {"float32": conv + gemm, "int8": 2 * (2 * 6) * 5}


def test_inspect_plain_onnx_file(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save(_two_matmuls(), path)
    report = inspect_artifact(path, batch=2)
    assert report.kind == "onnx"
    assert [(t.name, t.shape, t.dtype) for t in report.inputs] == [
        ("a", ("B", 4, 8), "float16"),
        ("c", ("B", 3, 5), "float32"),
    ]
    assert report.op_histogram == {"MatMul": 2}
    assert report.files == {"two.onnx": path.stat().st_size}
    assert report.lint_ok and report.precision.batch == 2


def test_cli_prints_io_contract_and_json(tmp_path):
    path = tmp_path / "two.onnx"
    onnx.save(_two_matmuls(), path)
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "IO contract" in result.output
    assert "a" in result.output and "[B, 4, 8]" in result.output and "float16" in result.output
    as_json = runner.invoke(cli, ["inspect", str(path), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.output)["outputs"][1]["name"] == "y32"


def test_cli_missing_path_and_strict(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["inspect", str(tmp_path / "nope")])
    assert missing.exit_code != 0
    assert "no such artifact" in missing.output
    node = h.make_node("Frobnicate", ["x"], ["y"], domain="acme")
    x, y = (h.make_tensor_value_info(n, T.FLOAT, [2]) for n in ("x", "y"))
    opsets = [h.make_opsetid("", 18), h.make_opsetid("acme", 1)]
    path = tmp_path / "custom.onnx"
    onnx.save(h.make_model(h.make_graph([node], "g", [x], [y]), opset_imports=opsets), path)
    assert runner.invoke(cli, ["inspect", str(path)]).exit_code == 0
    strict = runner.invoke(cli, ["inspect", str(path), "--strict"])
    assert strict.exit_code == 1 and "lint" in strict.output


def _contract_graph(cfg) -> onnx.ModelProto:
    """A stand-in step graph with the contract's I/O: v = 2·x_t, state_out = state + 1."""
    import numpy as np

    inputs = [
        h.make_tensor_value_info("x_t", T.FLOAT, ["batch", cfg.in_channels, 16, 16]),
        h.make_tensor_value_info("t", T.FLOAT, ["batch"]),
        h.make_tensor_value_info("label", T.INT64, ["batch"]),
        h.make_tensor_value_info("frame_index", T.INT64, ["batch"]),
        h.make_tensor_value_info("state", T.FLOAT, [cfg.depth, "batch", cfg.state_width]),
        h.make_tensor_value_info("count", T.FLOAT, ["batch"]),
    ]
    outputs = [
        h.make_tensor_value_info("v", T.FLOAT, ["batch", cfg.in_channels, 16, 16]),
        h.make_tensor_value_info("state_out", T.FLOAT, [cfg.depth, "batch", cfg.state_width]),
    ]
    nodes = [
        h.make_node("Mul", ["x_t", "two"], ["v"]),
        h.make_node("Add", ["state", "one"], ["state_out"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("two", 2), ("one", 1))
    ]
    # The label table the loader checks num_classes against (unused by this stand-in).
    table = np.zeros((cfg.num_classes + 1, cfg.width), np.float32)
    inits.append(numpy_helper.from_array(table, "model.label.weight"))
    graph = h.make_graph(nodes, "step", inputs, outputs, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])


def test_inspect_artifact_directory_reads_the_manifest(tmp_path):
    """Files and sizes from the verified manifest; the batch range bounds the graph's symbol."""
    from pomexport.export.artifact import build_manifest, write_manifest
    from pomexport.export.onnx_files import save_onnx
    from pomexport.models.presets import TINY

    save_onnx(_contract_graph(TINY), tmp_path / "model.onnx")
    write_manifest(tmp_path, build_manifest(TINY, "tiny", "fp32", ["portable"], 18, (1, 3, 8)))
    report = inspect_artifact(tmp_path)
    assert report.kind == "artifact" and report.model_file == "model.onnx"
    assert report.files == {"model.onnx": (tmp_path / "model.onnx").stat().st_size}
    assert report.precision.batch == 3  # the profile's opt batch
    # "batch" is bound by the manifest's B range: no unbounded-dim warning.
    assert report.lint_ok and report.lint["model.onnx"].warnings == []
    size = (tmp_path / "model.onnx").stat().st_size  # same size: the hash must catch it
    (tmp_path / "model.onnx").write_bytes(b"tampered".ljust(size, b"\0"))
    with pytest.raises(ArtifactError, match="sha256"):
        inspect_artifact(tmp_path)


@pytest.mark.slow
def test_real_tiny_fp32_artifact_lints_clean_for_both_trt_versions(tmp_path):
    """Export the tiny preset (fp32, both flavors): no lint error for TensorRT 10.3 nor 11."""
    from pomexport.export import api

    artifact = api.export_model("tiny", tmp_path / "tiny", flavor="both", batch=(1, 2, 4))
    report = inspect_artifact(artifact.root)
    assert set(report.lint) == {"model.onnx", "model.plugin.onnx"}
    for name, lint in report.lint.items():
        assert lint.trt_versions == ("10.3", "11")
        assert lint.errors == [], (name, [str(f) for f in lint.errors])
    assert [t.name for t in report.inputs] == ["x_t", "t", "label", "frame_index", "state", "count"]
    assert [t.name for t in report.outputs] == ["v", "state_out"]
    assert set(report.precision.shares) == {"float32"} and report.precision.unresolved == []
    assert report.op_histogram["pomexport::PolyMixer"] == artifact.config.depth
