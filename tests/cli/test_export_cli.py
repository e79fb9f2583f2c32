"""`pomexport export` through click's CliRunner: the artifact, progress, one-line errors."""

from __future__ import annotations

import logging

import onnx
import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.export import parse_batch
from pomexport.cli.main import cli
from pomexport.errors import ConfigError
from pomexport.export import load_artifact
from pomexport.export.artifact.contract import STEP_INPUTS
from pomexport.models import PoMDiT, get_preset, save_weights


@pytest.fixture
def small_weights(tmp_path):
    """A depth-1, 8x8 tiny-shaped *image* model saved as a weights file (fast to export)."""
    torch.manual_seed(0)
    model = PoMDiT(get_preset("tiny").replace(depth=1, input_size=8, video=False)).eval()
    return save_weights(model, tmp_path / "small.safetensors")


def test_export_writes_a_verified_artifact(small_weights, tmp_path):
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    out = tmp_path / "art"
    args = ["export", str(small_weights), "--flavor", "plugin", "--batch", "1:2:4"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "tracing the step graph" in result.output  # progress lines (stderr)
    art = load_artifact(out)
    assert art.flavors == ("plugin",) and art.batch == (1, 2, 4)
    assert art.model_name == "small" and art.precision == "fp32"
    # Image models export the same graph, frame_index and state included (docs/design.md §3).
    graph = onnx.load(str(art.onnx_path("plugin"))).graph
    assert [i.name for i in graph.input] == [s.name for s in STEP_INPUTS]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tiny", "--batch", "8:2:4"], "batch must satisfy"),
        (["tiny", "--batch", "a:b"], "--batch wants MIN:OPT:MAX"),
        (["tiny", "--opset", "9"], "opset must be in"),
        (["no-such-model"], "unknown model"),
    ],
)
def test_bad_input_is_one_line(args, message, tmp_path):
    result = CliRunner().invoke(cli, ["export", *args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_default_model_missing_is_explained(tmp_path, monkeypatch):
    """As if the package were installed without its weights (they ship in it, so the path is
    redirected to a file that does not exist)."""
    from pomexport.export import api

    monkeypatch.setattr(api, "bundled_path", lambda name: tmp_path / f"{name}.safetensors")
    result = CliRunner().invoke(cli, ["export", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "not installed yet" in result.output and "'tiny'" in result.output


def test_parse_batch():
    assert parse_batch("1:4:16") == (1, 4, 16)
    assert parse_batch("3") == (3, 3, 3)
    with pytest.raises(ConfigError):
        parse_batch("1:2")
