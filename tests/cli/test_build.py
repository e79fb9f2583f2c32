"""`pomexport build` through click's CliRunner: the README's build-then-generate command,
and one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.export.artifact import load_artifact
from pomexport.export.pipeline import tensorrt_missing
from pomexport.models.registry import load_model
from pomexport.runtime import generate

FP16_PSNR_MIN_DB = 40.0  # fp16 graph vs the fp32 torch model, 4 frames of the tiny preset


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _one_error_line(result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_build_fp16_then_generate_from_it(tmp_path):
    """The README's main job on the tiny preset: fp16 artifact (signed, issue 22), then a
    clip from it trusting the signing key; another key is refused in one line."""
    from pomexport.export.artifact.signing import keygen, load_public_key

    key, public = keygen(tmp_path / "ops")
    other = keygen(tmp_path / "other")[1]
    out = tmp_path / "tiny"
    result = _run("build", "tiny", "--precision", "fp16", "--backend", "auto", "--out", str(out),
                  "--sign", str(key))  # fmt: skip
    assert result.exit_code == 0, result.output
    artifact = load_artifact(out, trusted=[load_public_key(public)])
    assert artifact.precision == "fp16" and artifact.flavors == ("portable", "plugin")
    if tensorrt_missing():
        assert "the TensorRT engine will be built on the target" in result.output

    clip = tmp_path / "clip.npy"
    args = ["--frames", "4", "--steps", "3", "--seed", "4", "--label", "5", "--no-progress"]
    refused = _run("generate", str(out), *args, "--trusted-key", str(other), "--out", str(clip))
    _one_error_line(refused, "which is not a trusted key")
    result = _run("generate", str(out), *args, "--trusted-key", str(public), "--out", str(clip))
    assert result.exit_code == 0, result.output
    assert "backend: ort-" in result.output
    ours = np.load(clip)
    reference = generate(load_model("tiny"), [5], frames=4, steps=3, seed=4).numpy()
    psnr = 10 * np.log10(4.0 / np.mean((ours - reference) ** 2))
    assert psnr >= FP16_PSNR_MIN_DB, psnr


@pytest.mark.skipif(tensorrt_missing() is None, reason="TensorRT and a GPU are available")
def test_trt_backend_without_tensorrt_is_one_line_and_nonzero(tmp_path):
    result = _run("build", "tiny", "--backend", "trt", "--out", str(tmp_path / "a"))
    _one_error_line(result, "--backend trt: TensorRT is not installed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "2:1:4"], "--batch must satisfy 1 <= MIN <= OPT <= MAX"),
        (["--batch", "x"], "--batch takes MIN:OPT:MAX"),
        (["no-such-model"], "unknown model"),
    ],
)
def test_bad_input_is_one_line_and_nonzero_exit(tmp_path, args, message):
    result = _run("build", *args, "--out", str(tmp_path / "a"))
    _one_error_line(result, message)
    assert list(tmp_path.iterdir()) == []


def test_unknown_precision_is_refused():
    result = _run("build", "--precision", "int4")
    assert result.exit_code == 2 and "'int4' is not one of 'fp32', 'fp16', 'int8'" in result.output


def test_unwritable_out_is_one_line(tmp_path):
    """/sys refuses new entries even to root: refused before any export work."""
    result = _run("build", "tiny", "--precision", "fp32", "--backend", "ort", "--out", "/sys/art")
    _one_error_line(result, "cannot write /sys/art")
