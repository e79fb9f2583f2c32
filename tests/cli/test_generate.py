"""`pomexport generate` through click's CliRunner: outputs and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pomexport.cli.main import cli
from pomexport.models import get_preset, save_weights
from pomexport.runtime import generate

N = get_preset("tiny").num_classes
FAST = ["--frames", "2", "--steps", "2", "--no-progress"]


def _run(*args: str):
    return CliRunner().invoke(cli, ["generate", *args])


def test_npy_equals_the_python_api(make_model, tmp_path):
    model = make_model("moments")
    weights = save_weights(model, tmp_path / "m.safetensors")
    out = tmp_path / "clip.npy"
    result = _run(str(weights), *FAST, "--cfg", "1.5", "--seed", "3", "-l", "2", "-l", "5",
                  "--device", "cpu", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    expected = generate(model, [2, 5], frames=2, steps=2, cfg_scale=1.5, seed=3)
    assert np.array_equal(np.load(out), expected.numpy())


@pytest.mark.parametrize("ext", ["gif", "png"])
def test_tiny_preset_writes_viewable_images(tmp_path, ext):
    result = _run("tiny", *FAST, "--out", str(tmp_path / f"clip.{ext}"))
    assert result.exit_code == 0, result.output
    first = tmp_path / ("clip.gif" if ext == "gif" else "clip_0000.png")
    image = Image.open(first)
    assert image.size == (256, 256)  # 16 px frames -> default scale 16
    if ext == "gif":
        assert image.n_frames == 2
    else:
        assert (tmp_path / "clip_0001.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["tiny", "--frames", "0"], "--frames must be >= 1"),
        (["tiny", "--steps", "0"], "--steps must be >= 1"),
        (["tiny", "--label", str(N)], f"label {N} out of range [0, {N})"),
        (["tiny", "--label", "-1"], "label -1 out of range"),
        (["tiny", "--out", "clip.avi"], "unknown output extension"),
        (["no-such-model.safetensors"], "unknown model"),
    ],
)
def test_bad_input_is_one_line_and_nonzero_exit(args, message, tmp_path):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "clip.gif")]
    result = _run(*args, "--no-progress")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_backend_choices_are_only_existing_ones():
    result = _run("--help")
    assert result.exit_code == 0
    assert "[auto|torch|ort|ort-cuda|ort-trt]" in result.output
    assert torch  # the torch backend is importable here
