"""``runtime/clip.py``: ``pomexport generate`` as one Python call, same file, same errors."""

from __future__ import annotations

import numpy as np
import pytest

from pomexport.errors import ConfigError
from pomexport.models import save_weights
from pomexport.runtime import generate
from pomexport.runtime.clip import generate_clip
from pomexport.runtime.options import GenerateOptions, SamplerSettings
from pomexport.runtime.outputs import check_report_path


def test_npy_equals_generate_and_the_backend_is_said(make_model, tmp_path):
    model = make_model("moments")
    weights = save_weights(model, tmp_path / "m.safetensors")
    options = GenerateOptions(2, (2, 5), SamplerSettings(steps=2, cfg_scale=1.5, seed=3))
    said = []
    result = generate_clip(weights, tmp_path / "clip.npy", options, device="cpu", log=said.append)
    assert said == ["backend: torch on cpu (auto: a model name or weights run on torch)"]
    assert result.files == [tmp_path / "clip.npy"] and result.backend == "torch"
    assert result.summary.startswith(f"wrote {tmp_path / 'clip.npy'}: 2 stream(s) x 2 frames")
    expected = generate(model, [2, 5], frames=2, steps=2, cfg_scale=1.5, seed=3)
    assert np.array_equal(np.load(result.files[0]), expected.numpy())


def test_a_label_the_model_lacks_is_refused_before_writing(tmp_path):
    options = GenerateOptions(1, (999,), SamplerSettings(steps=1))
    with pytest.raises(ConfigError, match="label 999 out of range"):
        generate_clip("tiny", tmp_path / "clip.gif", options)
    assert list(tmp_path.iterdir()) == []


def test_report_path_is_made_or_refused(tmp_path):
    assert check_report_path(None) is None
    assert check_report_path(tmp_path / "a" / "r.json") == tmp_path / "a" / "r.json"
    assert (tmp_path / "a").is_dir()
    with pytest.raises(ConfigError, match="--plot: cannot write"):
        check_report_path(tmp_path / "a", "--plot")
