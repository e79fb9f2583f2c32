"""``verify --decoder`` (runtime/measure/verify_decoder.py, issue 21): the artifact's decoded
frames against torch's decode of the same latents, gated, and able to fail."""

from __future__ import annotations

import diffusers
import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ConfigError
from pomexport.runtime.measure.verify_decoder import verify_decoder


@pytest.mark.parametrize("name", ["kl", "wan"])
def test_the_decoder_stage_matches_torch(decoders, name):
    report = verify_decoder(decoders.artifact(name), decoders.source(name), frames=3)
    assert report and report.max_abs < 1e-4 and report.psnr_db_min > 80, report.summary
    assert report.rgb_frames == (9 if name == "wan" else 3) and "PASS" in report.summary


def test_another_autoencoder_fails_the_gate(decoders, tmp_path):
    decoders.source("kl")
    torch.manual_seed(1)  # the same architecture, other weights
    other = diffusers.AutoencoderKL.from_config(decoders.vaes["kl"].config)
    other.save_pretrained(tmp_path / "other")
    report = verify_decoder(decoders.artifact("kl"), tmp_path / "other", frames=2)
    assert not report and report.max_abs > 0.01 and "FAIL" in report.summary


def test_an_artifact_without_a_decoder_is_one_line(ort_artifact, decoders):
    with pytest.raises(ConfigError, match="has no decoder stage"):
        verify_decoder(ort_artifact[0], decoders.source("kl"))


def test_the_cli_verifies_the_decoder_too(decoders):
    art, source = decoders.artifact("kl"), decoders.source("kl")
    args = ["verify", str(art.root), "--frames", "2", "--steps", "1", "--decoder", str(source)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "decoder AutoencoderKL (image, fp32) vs torch: 2 latent -> 2 RGB frames" in result.output
