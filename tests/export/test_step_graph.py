"""export/step_graph.py: the step graph's GELUs in the form ONNX Runtime fuses (issue 24)."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest


@pytest.mark.parametrize("name", ["moments", "powers"])
def test_onnx_runtime_fuses_every_gelu_of_the_step(fp32_artifacts, name, tmp_path):
    """The MLP's tanh GELU becomes FastGelu, the mixer's erf GELU (moments) BiasGelu: no
    Pow, Tanh or Erf is left to run as separate kernels."""
    artifact = fp32_artifacts[name]
    source = onnx.load(artifact.root / "model.onnx")
    depth = sum(n.op_type == "PolyMixer" for n in source.graph.node)
    assert sum(n.op_type == "Tanh" for n in source.graph.node) == depth  # one MLP per block
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(source.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert not {"Pow", "Tanh", "Erf"} & set(ops), ops
    assert ops.count("FastGelu") == depth
    # moments: the mixer's h projection has a bias, fused with its GELU (h has no other reader)
    assert ops.count("BiasGelu") == (depth if name == "moments" else 0)
