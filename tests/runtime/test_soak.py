"""``soak``: samples, summary, JSON + PNG, and the CLI, on a small model for a few frames."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.runtime.soak import SoakOptions, _slope, soak


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
