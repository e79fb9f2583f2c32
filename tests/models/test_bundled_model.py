"""The bundled, trained ``pom-dit-video-tiny``: small, reloads bit-exactly, and generates
clips that score close to real data where an untrained model does not."""

from __future__ import annotations

import json

import pytest
import torch

from pomexport.models import get_preset, load_model, load_weights, save_weights
from pomexport.models.quality import evaluate_real
from pomexport.models.registry import bundled_path
from pomexport.models.train_demo import trained_ranges
from pomexport.runtime.measure.long_horizon import evaluate_model

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
    # The tiny architecture with a stationary state (decay < 1, bounded frame index).
    assert bundled.cfg.replace(decay=1.0, max_frame_index=None) == get_preset("tiny")
    assert bundled.cfg.decay < 1.0 and bundled.cfg.max_frame_index is not None
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


def _reads(model, frames: int) -> dict[str, float]:
    """Stream ``frames`` frames (1 Euler step, CFG on) and record the largest frame-index
    embedding input and PolyMixer count the model reads."""
    from pomexport.runtime import generate_frames

    seen = {"frame_index": 0.0, "mixer_count": 0.0}

    def note(key):
        def hook(module, args):
            value = args[0] if key == "frame_index" else args[2]
            seen[key] = max(seen[key], float(value.max()))

        return hook

    hooks = [model.frame.register_forward_pre_hook(note("frame_index"))]
    hooks += [b.mixer.register_forward_pre_hook(note("mixer_count")) for b in model.blocks]
    try:
        for _ in generate_frames(model, [5], frames, steps=1, cfg_scale=2.0):
            pass
    finally:
        for h in hooks:
            h.remove()
    return seen


def _outside(seen: dict[str, float], ranges) -> list[str]:
    limits = {"frame_index": ranges.frame_index, "mixer_count": ranges.mixer_count * (1 + 1e-5)}
    return [f"{k} {seen[k]:g} > trained {limits[k]:g}" for k in seen if seen[k] > limits[k]]


@pytest.mark.slow
def test_a_2000_frame_stream_reads_nothing_outside_the_trained_range(bundled):
    """The shipped model's stream inputs stay inside what its training recorded; the same
    check flags an unbounded (uniform-mean, absolute-index) model within 80 frames."""
    info = json.loads(bundled_path(NAME).with_suffix(".json").read_text())
    ranges = trained_ranges(info, bundled.cfg)
    assert _outside(_reads(bundled, 2000), ranges) == []
    unbounded = load_model(NAME)
    unbounded.cfg = unbounded.cfg.replace(decay=1.0, max_frame_index=None)
    seen = _reads(unbounded, 80)
    assert len(_outside(seen, trained_ranges(info, unbounded.cfg))) == 2, seen
