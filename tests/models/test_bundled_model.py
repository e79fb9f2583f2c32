"""The bundled, trained ``pom-dit-video-tiny``: small, reloads bit-exactly, and generates
clips that score close to real data where an untrained model does not."""

from __future__ import annotations

import json

import pytest
import torch

from pomexport.models import get_preset, load_model, load_weights, save_weights
from pomexport.models.quality import evaluate_model, evaluate_real
from pomexport.models.registry import bundled_path

NAME = "pom-dit-video-tiny"
CLIPS, FRAMES = 6, 16  # labels 0, 7, ..., 35: every shape, colour and direction
SAMPLER = dict(steps=20, cfg_scale=2.0)
GUARD_SINGLE_BLOB = 0.05


@pytest.fixture(scope="module")
def bundled():
    return load_model(NAME)


def test_weights_are_small_and_match_the_tiny_preset(bundled):
    path = bundled_path(NAME)
    assert path.stat().st_size <= 8 * 2**20
    assert bundled.cfg == get_preset("tiny")
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["step"] > 0 and info["train"]["seed"] == 0


def test_weights_reload_bit_exactly(bundled, tmp_path):
    again = load_weights(save_weights(bundled, tmp_path / "copy.safetensors"))
    ref = bundled.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in again.state_dict().items())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    state, count = bundled.zero_state(2)
    args = (x, torch.tensor([0.7, 0.2]), torch.tensor([3, 20]), torch.tensor([0, 4]))
    with torch.no_grad():
        a = bundled.step(*args, state + 0.5, count + 64)
        b = again.step(*args, state + 0.5, count + 64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.fixture(scope="module")
def reports(bundled):
    real = evaluate_real(CLIPS, FRAMES)
    trained = evaluate_model(bundled, CLIPS, FRAMES, **SAMPLER)
    untrained = evaluate_model(load_model("tiny"), CLIPS, FRAMES, **SAMPLER)
    return real, trained, untrained


@pytest.mark.slow
def test_trained_beats_untrained(reports):
    """Regression guard for the shipped weights (measured: see the bundled .json/report)."""
    real, trained, untrained = reports
    assert real.single_blob == 1.0 and untrained.single_blob <= 0.3 * real.single_blob
    assert trained.single_blob >= untrained.single_blob + GUARD_SINGLE_BLOB


@pytest.mark.slow
def test_trained_scores_near_real_untrained_does_not(reports):
    real, trained, untrained = reports
    for metric in ("single_blob", "consistency"):
        ref = getattr(real, metric)
        assert getattr(untrained, metric) <= 0.3 * ref, (metric, untrained, real)
        assert getattr(trained, metric) >= 0.8 * ref, (metric, trained, real)
