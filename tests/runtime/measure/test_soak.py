"""``soak``: samples, summary, JSON + PNG, and the CLI, on a small model for a few frames."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.runtime.measure.soak import SoakOptions, _slope, soak


def test_soak_of_a_model_writes_json_and_png(make_model, tmp_path):
    report = soak(make_model(), SoakOptions(frames=12, every=4, steps=1), tmp_path)
    assert report and report.summary["frames_done"] == 12
    assert [s["frame"] for s in report.samples] == [1, 4, 8, 12]
    assert all(s["state_finite"] and s["rss_mib"] > 0 for s in report.samples)
    # The torch run is its own fp32 reference: same ops, the drift is exactly 0.
    assert report.summary["state_rel_max"] == 0.0
    counts = [s["count"] for s in report.samples]
    assert counts == [make_model().cfg.tokens_per_frame * s["frame"] for s in report.samples]
    saved = json.loads((tmp_path / "soak.json").read_text())
    assert saved["summary"]["frames_done"] == 12
    assert (tmp_path / "soak.png").read_bytes()[:4] == b"\x89PNG"


def test_slope_is_least_squares():
    samples = [{"frame": f, "rss_mib": 2.0 * f + 1.0} for f in (10, 20, 40)]
    assert _slope(samples, "rss_mib") == pytest.approx(2.0)
    assert _slope(samples[:1], "rss_mib") is None


def test_soak_options_are_checked():
    with pytest.raises(Exception, match="frames >= 2"):
        SoakOptions(frames=1)


def test_soak_cli(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["soak", "tiny", "--frames", "3", "--every", "1", "--steps", "1", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "3 frames in" in result.output and (tmp_path / "soak.png").is_file()


def test_soak_cli_bad_source(tmp_path):
    result = CliRunner().invoke(
        cli, ["soak", "no-such-model", "--frames", "3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1 and result.output.startswith("Error: ")


def test_soak_of_a_stationary_artifact_against_its_reference(stationary_artifact, tmp_path):
    """Issue 18: a decay-0.6 artifact on ONNX Runtime soaked against its torch reference
    (given explicitly: it was exported from a model object). The runtime's count stays in
    tokens, the discounted state's drift stays at fp32 reordering (export/artifact/gates.py's fp32
    state bound, 1e-5) past max_frame_index 2, and the summary names the regime."""
    from pomexport.errors import ConfigError
    from pomexport.models.weights import save_weights

    art, model = stationary_artifact
    options = SoakOptions(frames=8, every=2, steps=1, backend="ort", device="cpu")
    with pytest.raises(ConfigError, match="pass the reference with --model"):
        soak(art.root, options)
    report = soak(art.root, options, reference_model=model)
    assert report and report.summary["decay"] == 0.6
    counts = [s["count"] for s in report.samples]
    assert counts == [model.cfg.tokens_per_frame * s["frame"] for s in report.samples]
    assert report.summary["state_rel_max"] <= 1e-5 and report.summary["v_rel_max"] <= 1e-4
    weights = save_weights(model, tmp_path / "stationary.safetensors")  # --model takes a file
    args = ["soak", str(art.root), "--model", str(weights), "--frames", "2", "--every", "1"]
    result = CliRunner().invoke(cli, [*args, "--steps", "1", "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
