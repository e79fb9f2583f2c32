"""``pomexport verify``: exit 0 when the gates pass, 1 when one fails (layer named), and
``pomexport bench --plot``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli


@pytest.fixture(scope="module")
def artifact(verify_artifact) -> Path:
    return verify_artifact


def _tight_gates(artifact: Path, out: Path) -> Path:
    """A copy whose manifest declares an impossible fp32 gate (re-signed via the artifact
    API): the graph is untouched, so only the gate can make verify fail."""
    from pomexport.export.artifact import ArtifactDraft, load_artifact

    shutil.copytree(artifact, out)
    draft = ArtifactDraft(out, load_artifact(artifact).manifest)
    draft.manifest["gates"]["fp32"]["v_max_abs"] = 1e-12
    draft.commit()
    return out


def test_passing_artifact_exits_zero_and_writes_the_report(artifact, tmp_path):
    args = ["verify", str(artifact), "--frames", "2", "--steps", "2", "--report", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "gates: manifest" in result.output
    assert "PSNR (dB) at frame: 1:" in result.output
    for name in ("verify.json", "drift.json", "drift.png"):
        assert (tmp_path / name).is_file()
    assert json.loads((tmp_path / "verify.json").read_text())["summary"]["passed"] is True


def test_failed_gate_exits_nonzero(artifact, tmp_path):
    tight = _tight_gates(artifact, tmp_path / "tight")
    result = CliRunner().invoke(cli, ["verify", str(tight), "--frames", "1", "--steps", "1"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "max abs error" in result.output
    # Errors this small are rounding, not one layer: the search says so instead of guessing.
    assert "no layer exceeds its tolerance" in result.output


def test_against_a_second_artifact(artifact):
    args = ["verify", str(artifact), "--against", str(artifact), "--frames", "1", "--steps", "1"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "worst step: v max abs 0," in result.output  # the same graph: bit-identical


def test_bad_input_is_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output


def test_bench_plot_writes_a_png(tmp_path):
    from PIL import Image

    plot, out = tmp_path / "bench.png", tmp_path / "bench.json"
    args = ["bench", "--presets", "tiny", "--frames", "1,2", "--steps", "1", "--repeats", "1"]
    args += ["--warmup", "0", "--isolation", "none", "--threads", "1", "--no-baseline"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    with Image.open(plot) as image:
        assert image.format == "PNG"
    assert json.loads(out.read_text())["rows"]  # the JSON is written too
