"""Latent presets (models/presets.py, issue 21): inputs that match the autoencoders they pair
with, the latent's patch size and frame rate stated, small enough for a CPU."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.models.catalog import parameter_count
from pomexport.models.decoders import check_source_for
from pomexport.models.presets import LATENTS, PRESETS


@pytest.mark.parametrize(
    ("preset", "source", "channels"),
    [("sd-latent-tiny", "kl", 4), ("sd-latent-tiny", "tiny", 4), ("wan-latent-tiny", "wan", 16)],
)
def test_latent_presets_take_their_autoencoders_latents(decoders, preset, source, channels):
    cfg = PRESETS[preset]
    assert cfg.in_channels == channels == LATENTS[preset][1] and cfg.video
    assert cfg.patch_size == 2 and cfg.input_size == 16 and cfg.tokens_per_frame == 64
    assert parameter_count(cfg) < 2_000_000  # CPU-sized, random weights
    config = check_source_for(decoders.source(source), cfg.in_channels, cfg.video)
    assert config["_class_name"] in LATENTS[preset][0]


def test_models_states_the_latent_of_each_latent_preset():
    rows = {r["name"]: r for r in json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)}
    wan = rows["wan-latent-tiny"]
    assert wan["in_channels"] == 16 and wan["patch_size"] == 2
    assert wan["latent"]["rgb_frames_per_latent_frame"] == "1 for the first, then 4"
    assert rows["sd-latent-tiny"]["latent"]["channels"] == 4 and "latent" not in rows["S/2"]
    text = CliRunner().invoke(cli, ["models"]).output
    assert "wan-latent-tiny: 16-channel latent of AutoencoderKLWan" in text
