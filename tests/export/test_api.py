"""The portable fp32 artifact in ONNX Runtime equals ``PoMDiT.step`` (docs/design.md §3)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pomexport.errors import ConfigError, ExportError
from pomexport.export import export_model, load_artifact
from pomexport.export.artifact.contract import STEP_INPUTS, STEP_OUTPUTS

# The bound, on both outputs. state_out is an fp32 sum over tokens and frames (|state|
# up to ~100 here, an ulp ~8e-6), so this holds only because the graph computes what torch
# computes: the sinusoid frequencies are exported from torch's buffer, not re-folded.
V_ATOL = STATE_ATOL = 1e-4


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def _inputs(model, batch: int, frame: int, t: float, seed: int):
    """Step inputs at ``frame`` after committing frames 0..frame-1 (non-zero state/count)."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, cfg.in_channels, cfg.input_size, cfg.input_size)
    label = torch.randint(0, cfg.num_classes + 1, (batch,), generator=gen)
    state, count = model.zero_state(batch)
    for f in range(frame):
        clean = torch.rand(shape, generator=gen) * 2 - 1
        index = torch.full((batch,), f)
        _, state = model.step(clean, torch.zeros(batch), label, index, state, count)
        count = count + cfg.tokens_per_frame
    x = torch.randn(shape, generator=gen)
    return x, torch.full((batch,), t), label, torch.full((batch,), frame), state, count


@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_portable_fp32_matches_torch_step(variant, models, fp32_artifacts):
    model, art = models[variant], fp32_artifacts[variant]
    session = _session(art.onnx_path("portable"))
    worst_v = worst_s = 0.0
    for batch in (1, 3):
        for frame, t in ((0, 1.0), (1, 0.5), (3, 0.1), (5, 0.0)):
            inputs = _inputs(model, batch, frame, t, seed=10 * batch + frame)
            v, state_out = session.run(
                None, {s.name: x.numpy() for s, x in zip(STEP_INPUTS, inputs, strict=True)}
            )
            with torch.no_grad():
                ref_v, ref_state = model.step(*inputs)
            worst_v = max(worst_v, float(np.abs(v - ref_v.numpy()).max()))
            ref_state = ref_state.numpy()
            worst_s = max(worst_s, float(np.abs(state_out - ref_state).max()))
    assert worst_v <= V_ATOL, f"{variant}: v max abs error {worst_v:.2e}"
    assert worst_s <= STATE_ATOL, f"{variant}: state_out max abs error {worst_s:.2e}"


def test_stationary_portable_fp32_matches_torch_step(stationary_artifact):
    """decay 0.6 and max_frame_index 2 (frames 3 and 5 are past it), non-zero counts: the
    discounted read is graph arithmetic on ``state``/``count``, within the same bounds."""
    art, model = stationary_artifact
    session = _session(art.onnx_path("portable"))
    worst_v = worst_s = 0.0
    for frame, t in ((0, 1.0), (1, 0.5), (3, 0.1), (5, 0.0)):
        inputs = _inputs(model, 2, frame, t, seed=frame)
        v, state_out = session.run(
            None, {s.name: x.numpy() for s, x in zip(STEP_INPUTS, inputs, strict=True)}
        )
        with torch.no_grad():
            ref_v, ref_state = model.step(*inputs)
        worst_v = max(worst_v, float(np.abs(v - ref_v.numpy()).max()))
        worst_s = max(worst_s, float(np.abs(state_out - ref_state.numpy()).max()))
    assert worst_v <= V_ATOL, f"v max abs error {worst_v:.2e}"
    assert worst_s <= STATE_ATOL, f"state_out max abs error {worst_s:.2e}"


def test_decay_one_feeds_state_and_count_to_the_op_untouched(fp32_artifacts, stationary_artifact):
    """decay 1 exports today's graph: ``count`` goes straight into every PolyMixer node and
    ``state`` only through the per-layer Gather (no arithmetic on either). With a decay the
    discounted read sits between them and the op (docs/design.md), and the graph still lints
    clean for TensorRT (the bounded frame index is clamped as fp32: no int64 Clip)."""
    from pomexport.export.trt_lint import lint_model

    def readers(model: onnx.ModelProto, name: str) -> set[str]:
        return {n.op_type for n in model.graph.node if name in n.input}

    today = onnx.load(str(fp32_artifacts["moments"].onnx_path("plugin")))
    assert readers(today, "count") == {"PolyMixer"} and readers(today, "state") == {"Gather"}
    stationary = onnx.load(str(stationary_artifact[0].onnx_path("plugin")))
    assert "PolyMixer" not in readers(stationary, "count")
    assert "Gather" not in readers(stationary, "state")
    for flavor in ("portable", "plugin"):
        report = lint_model(onnx.load(str(stationary_artifact[0].onnx_path(flavor))))
        assert report, [f.__dict__ for f in report.errors]


def test_io_contract(fp32_artifacts):
    art = fp32_artifacts["moments"]
    model = onnx.load(str(art.onnx_path("portable")))
    cfg = art.config
    dims = {"C_in": cfg.in_channels, "H": cfg.input_size, "W": cfg.input_size, "L": cfg.depth}
    dims["C"] = cfg.state_width
    dtypes = {"float32": onnx.TensorProto.FLOAT, "int64": onnx.TensorProto.INT64, "model": 1}
    for value, spec in zip(
        [*model.graph.input, *model.graph.output], STEP_INPUTS + STEP_OUTPUTS, strict=True
    ):
        assert value.name == spec.name
        assert value.type.tensor_type.elem_type == dtypes[spec.dtype]
        shape = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert shape == [dims.get(d, d) for d in spec.shape], spec.name
    assert [i["name"] for i in art.inputs] == [s.name for s in STEP_INPUTS]
    assert art.manifest["batch"] == {"min": 1, "opt": 2, "max": 8}
    assert {"torch", "onnx", "onnxscript", "pomexport"} <= set(art.manifest["versions"])


@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_flavors_check_and_differ_only_by_function_and_plugin_namespace(variant, fp32_artifacts):
    art = fp32_artifacts[variant]
    portable = onnx.load(str(art.onnx_path("portable")))
    plugin = onnx.load(str(art.onnx_path("plugin")))
    for model in (portable, plugin):
        onnx.checker.check_model(model, full_check=True)
    assert [(f.domain, f.name) for f in portable.functions] == [("pomexport", "PolyMixer")]
    assert len(plugin.functions) == 0
    mixers = [n for n in plugin.graph.node if n.domain == "pomexport"]
    assert len(mixers) == art.config.depth and all(n.op_type == "PolyMixer" for n in mixers)
    # The plugin flavor names the plugin's registry namespace on every node (the lookup every
    # TensorRT parser tries first); the portable one never does (runtime/plugin/README.md).
    namespaces = [[a.s for a in n.attribute if a.name == "plugin_namespace"] for n in mixers]
    assert namespaces == [[b"pomexport"]] * len(mixers)
    assert not any(a.name == "plugin_namespace" for n in portable.graph.node for a in n.attribute)
    del portable.functions[:]
    for node in mixers:
        kept = [a for a in node.attribute if a.name != "plugin_namespace"]
        del node.attribute[:]
        node.attribute.extend(kept)
    assert portable.SerializeToString(deterministic=True) == plugin.SerializeToString(
        deterministic=True
    )


def test_reload_verifies(fp32_artifacts):
    art = load_artifact(fp32_artifacts["powers"].root)
    assert art.variant == "powers" and art.flavors == ("portable", "plugin")


def test_bad_options_are_config_errors(models, tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        export_model(models["moments"], tmp_path / "a", precision="int4")
    with pytest.raises(ConfigError, match="batch"):
        export_model(models["moments"], tmp_path / "a", batch=(4, 2, 8))
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not a pomexport artifact"):
        export_model(models["moments"], tmp_path / "foreign")


def test_an_interrupted_export_leaves_the_old_artifact_and_the_next_one_replaces_it(
    models, tmp_path
):
    out = tmp_path / "art"
    first = export_model(models["moments"], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def die_while_writing(message: str) -> None:
        if message.startswith("checking"):  # model.onnx is written by now
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_model(models["powers"], out, progress=die_while_writing)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".art.lock") == ["art"]
    assert load_artifact(out).variant == first.variant == "moments"

    assert export_model(models["powers"], out).variant == "powers"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
