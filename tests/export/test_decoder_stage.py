"""`pomexport build MODEL --decoder DIR` (export/decoder_stage.py, export/pipeline.py; issue 21):
the folder is checked against the model before any export, the decoder joins the build's one
manifest write, at the build's precision (int8 builds: fp16)."""

from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact import load_artifact
from pomexport.export.decoder_stage import DECODER_PRECISION
from pomexport.export.pipeline import build
from pomexport.models import PoMDiT, get_preset


@pytest.fixture
def no_export(monkeypatch):
    """Any export is a failure: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("exported before the decoder was checked")

    monkeypatch.setattr("pomexport.export.api.export_model", refuse)


def test_latent_channels_must_match_the_model(decoders, tmp_path, no_export):
    with pytest.raises(ConfigError, match="4 latent channels, the model's input has 3"):
        build("tiny", tmp_path / "out", "fp32", "ort", decoder=decoders.source("kl"))
    with pytest.raises(ConfigError, match="16 latent channels, the model's input has 4"):
        build("sd-latent-tiny", tmp_path / "out", "fp32", "ort", decoder=decoders.source("wan"))
    assert list(tmp_path.iterdir()) == []


def test_a_video_decoder_needs_a_video_model(decoders, tmp_path, no_export):
    image_model = PoMDiT(get_preset("wan-latent-tiny").replace(video=False))
    with pytest.raises(ConfigError, match="causal video decoder and the model is an image"):
        build(image_model, tmp_path / "out", "fp32", "ort", decoder=decoders.source("wan"))


def test_a_folder_that_is_no_autoencoder_is_one_line(tmp_path, no_export):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="no readable config.json"):
        build("sd-latent-tiny", tmp_path / "out", decoder=tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(ConfigError, match="_class_name 'UNet2DModel' is not one of"):
        build("sd-latent-tiny", tmp_path / "out", decoder=tmp_path / "other")
    with pytest.raises(ArtifactError, match="is not a local directory"):
        build("sd-latent-tiny", tmp_path / "out", decoder="stabilityai/sd-vae-ft-mse")


def test_the_cli_says_a_mismatch_in_one_line(decoders, tmp_path):
    result = CliRunner().invoke(cli, ["build", "tiny", "--decoder", str(decoders.source("kl")),
                                      "--out", str(tmp_path / "out")])  # fmt: skip
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1 and "latent channels" in lines[0], lines


@pytest.mark.slow  # a real int8 build (calibration)
def test_int8_build_carries_an_fp16_decoder_in_its_one_manifest_write(
    decoders, tmp_path, monkeypatch, write_counts
):
    """A real int8 build (small capture) with the TAESD decoder: manifest.json written once,
    each file hashed once, the decoder graphs fp16 inside with fp32 I/O, as the entry says."""
    from pomexport.calibration import CalibrationOptions, CaptureSettings

    assert DECODER_PRECISION == {"fp32": "fp32", "fp16": "fp16", "int8": "fp16"}
    capture = CaptureSettings(samples=32, frames=2, steps=2, seeds=(0,))
    out = tmp_path / "int8"
    options = CalibrationOptions(capture=capture)
    folder = decoders.source("tiny")
    result = build("sd-latent-tiny", out, "int8", "ort", calibration=options, decoder=folder)
    monkeypatch.undo()
    manifests, hashed = write_counts.manifests, write_counts.hashed
    assert len(manifests) == 1 and "AutoencoderTiny decoder (image, fp16)" in result.summary
    artifact = load_artifact(out)  # verified here, after the counts
    assert sorted(hashed) == sorted(n.rsplit("/", 1)[-1] for n in artifact.files), hashed
    spec = artifact.decoder
    assert artifact.precision == "int8" and spec.precision == "fp16"
    graph = onnx.load(str(artifact.path(spec.files["decode"])))
    types = {t.data_type for t in graph.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert spec.graph("decode")["inputs"][0]["dtype"] == "float32"
