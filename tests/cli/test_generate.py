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
    assert "[auto|torch|ort|ort-cuda|ort-trt|trt]" in result.output
    assert torch  # the torch backend is importable here


# -- from an artifact (ONNX Runtime) ------------------------------------------------------
def test_artifact_npy_equals_the_python_api(ort_artifact, tmp_path):
    from pomexport.runtime.ort_backend import OrtBackend

    artifact = ort_artifact[0]
    out = tmp_path / "clip.npy"
    result = _run(str(artifact.root), *FAST, "--seed", "3", "-l", "2", "--backend", "auto",
                  "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "backend: ort-cpu on cpu (auto: " in result.output
    expected = generate(OrtBackend(artifact), [2], frames=2, steps=2, cfg_scale=2.0, seed=3)
    assert np.array_equal(np.load(out), expected.numpy())


def _copy_artifact(artifact, tmp_path):
    import shutil

    return shutil.copytree(artifact.root, tmp_path / "artifact")


def _corrupt(root, resign: bool) -> None:
    import json

    from pomexport.export.artifact import write_manifest

    onnx_file = root / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes().replace(b"MatMul", b"MatMuX"))
    if resign:
        write_manifest(root, json.loads((root / "manifest.json").read_text()))


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such artifact directory"),
        ("not-an-artifact", "manifest.json: missing (not a pomexport artifact)"),
        ("hash-mismatch", "model.onnx: sha256 mismatch"),
        ("corrupt-resigned", "ONNX Runtime cannot load it"),
        ("label", f"label {N} out of range [0, {N})"),
        ("frames", "--frames must be >= 1"),
        ("torch-backend", "an artifact holds ONNX graphs, not torch weights"),
    ],
)
def test_bad_artifact_input_is_one_line_and_nonzero_exit(ort_artifact, tmp_path, case, message):
    root = _copy_artifact(ort_artifact[0], tmp_path)
    args = [str(root)]
    if case == "missing":
        args = [str(tmp_path / "no" / "such-artifact")]
    elif case == "not-an-artifact":
        (root / "manifest.json").unlink()
    elif case in ("hash-mismatch", "corrupt-resigned"):
        _corrupt(root, resign=case == "corrupt-resigned")
    extra = {"label": ["--label", str(N)], "frames": ["--frames", "0"]}.get(case, [])
    extra += ["--backend", "torch"] if case == "torch-backend" else []
    out = tmp_path / "clip.gif"
    result = _run(*args, *extra, "--no-progress", "--out", str(out))
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert "Traceback" not in result.output
    assert not out.exists()


# -- outputs it cannot write, refused before generating (issue 22) -------------------------
def _one_line(result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines


@pytest.mark.parametrize(
    "frames, ext, message",
    [
        ("1000000000", "npy", "of latents need"),  # 3 TB of latents: more than the disk
        ("1000000000", "gif", "a gif keeps every frame until the end"),
    ],
)
def test_impossible_clip_refused_in_under_a_second(tmp_path, frames, ext, message):
    import time

    start = time.perf_counter()
    result = _run("tiny", "--frames", frames, "--steps", "1", "--no-progress",
                  "--out", str(tmp_path / f"clip.{ext}"))  # fmt: skip
    elapsed = time.perf_counter() - start
    _one_line(result, message)
    assert elapsed < 1.0, elapsed
    assert list(tmp_path.iterdir()) == []


def test_unwritable_outputs_refused_before_generating(tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    _one_line(_run("tiny", *FAST, "--out", str(tmp_path / "dir.mp4")), "exists and is not a file")
    # /sys refuses new files even to root (a chmod'ed folder would not stop root).
    _one_line(_run("tiny", *FAST, "--out", "/sys/clip.gif"), "cannot write to /sys")
    assert [p.name for p in tmp_path.iterdir()] == ["dir.mp4"]


def test_output_into_an_artifact_refused(ort_artifact, tmp_path):
    root = _copy_artifact(ort_artifact[0], tmp_path)
    before = sorted(p.name for p in root.iterdir())
    for out in (root / "clip.mp4", root / "frames" / "clip.png"):
        (root / "frames").mkdir(exist_ok=True)
        result = _run(str(root), *FAST, "--out", str(out))
        _one_line(result, "inside the artifact")
        (root / "frames").rmdir()
    assert sorted(p.name for p in root.iterdir()) == before


def test_impossible_path_refused_in_under_a_second_by_the_console_script(tmp_path):
    """The real process: options and output path are checked before torch is imported."""
    import shutil
    import subprocess
    import time

    script = shutil.which("pomexport")
    assert script, "the pomexport console script is required (pip install -e .)"
    for args, message in (
        (["--out", "/sys/clip.mp4"], "cannot write to /sys"),
        (["--frames", "0", "--out", str(tmp_path / "c.mp4")], "--frames must be >= 1"),
    ):
        start = time.perf_counter()
        done = subprocess.run([script, "generate", *args], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and message in lines[0], done.stderr
        assert elapsed < 1.0, elapsed


def test_decoder_option_decodes_a_model_on_torch(decoders, tmp_path):
    """`generate MODEL --decoder DIR` (issue 21): RGB from the autoencoder folder, said so."""
    out = tmp_path / "rgb.npy"
    result = _run("sd-latent-tiny", "--decoder", str(decoders.source("tiny")),
                  "--frames", "2", "--steps", "1", "--no-progress", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    said = "decoder: AutoencoderTiny on torch (cpu), 2 latent frames -> 2 RGB frames"
    assert said in result.output
    assert np.load(out).shape == (1, 2, 3, 32, 32)
