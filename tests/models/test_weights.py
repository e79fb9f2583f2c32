"""Weights I/O: exact round trip, weights-only .pt, clear refusals."""

from __future__ import annotations

import pytest
import torch

from pomexport.errors import ArtifactError, ConfigError
from pomexport.models import load_model, load_weights, save_weights


def _outputs(model):
    torch.manual_seed(1)
    cfg = model.cfg
    x = torch.randn(2, cfg.in_channels, cfg.input_size, cfg.input_size)
    state, count = model.zero_state(2)
    with torch.no_grad():
        return model.step(
            x, torch.rand(2), torch.tensor([1, 2]), torch.tensor([0, 5]), state + 1.0, count + 64
        )


def test_save_load_reproduces_outputs_exactly(make_model, variant, tmp_path):
    model = make_model(variant)
    path = save_weights(model, tmp_path / "m.safetensors")
    loaded = load_weights(path)
    assert loaded.cfg == model.cfg
    for a, b in zip(_outputs(model), _outputs(loaded), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))  # atomic write left no temp file


def test_pt_checkpoint_is_loaded_weights_only(make_model, tmp_path):
    model = make_model("moments")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "m.pt")
    loaded = load_weights(tmp_path / "m.pt", cfg=model.cfg)
    assert torch.equal(_outputs(model)[0], _outputs(loaded)[0])


def test_pt_that_would_run_code_is_refused(tmp_path):
    canary = tmp_path / "canary"

    class Evil:
        def __reduce__(self):
            return (open, (str(canary), "w"))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError, match="weights-only"):
        load_weights(tmp_path / "evil.pt", cfg=load_model("tiny").cfg)
    assert not canary.exists()


def test_bad_inputs_are_clear_errors(make_model, tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_weights(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(ArtifactError, match="cannot read"):
        load_weights(tmp_path / "junk.safetensors")
    with pytest.raises(ConfigError, match="unknown model"):
        load_model("no-such-model")
    path = save_weights(make_model("moments"), tmp_path / "m.safetensors")
    with pytest.raises(ArtifactError, match="do not match"):
        load_weights(path, cfg=make_model("powers").cfg)


def test_presets_are_deterministic_by_seed():
    a, b, c = load_model("tiny", seed=3), load_model("tiny", seed=3), load_model("tiny", seed=4)
    assert torch.equal(_outputs(a)[0], _outputs(b)[0])
    assert not torch.equal(_outputs(a)[0], _outputs(c)[0])
