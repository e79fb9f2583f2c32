"""Long-horizon curves: every window scored as the stream goes equals scoring that window of
the whole generated clip; the CLI writes JSON + PNG and refuses impossible requests."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.models.quality import eval_labels, real_clips, score_clips
from pomexport.models.registry import DEFAULT_MODEL
from pomexport.runtime import generate, generate_frames
from pomexport.runtime.measure.long_horizon import (
    CurveSettings,
    EvalSettings,
    at_frame,
    curve_paths,
    quality_curve,
)

SETTINGS = CurveSettings(clips=3, frames=24, window=8, steps=2, cfg_scale=2.0, seed=3)


@pytest.fixture(scope="module")
def curve():
    return quality_curve([DEFAULT_MODEL], SETTINGS)


def test_streamed_frames_equal_the_generated_clip(make_model):
    model = make_model("moments", decay=0.6, max_frame_index=2)
    kw = dict(labels=[1, 4], frames=5, steps=2, cfg_scale=2.0, seed=9)
    clip = generate(model, **kw)
    streamed = torch.stack(list(generate_frames(model, **kw)), dim=1)
    assert torch.equal(streamed, clip)


def test_curve_windows_equal_scoring_the_whole_clip(curve):
    from pomexport.models import load_model

    labels = eval_labels(SETTINGS.clips)
    clip = generate(load_model(DEFAULT_MODEL), labels.tolist(), SETTINGS.frames, 2, 2.0, 3)
    real, _ = real_clips(SETTINGS.clips, SETTINGS.frames, seed=3)
    for name, video in ((DEFAULT_MODEL, clip), ("real", real)):
        windows = curve["curves"][name]
        assert [w["last"] for w in windows] == [8, 16, 24]
        for w in windows:
            expected = score_clips(video[:, w["first"] - 1 : w["last"]], labels).to_dict()
            assert {k: w[k] for k in expected} == expected
    assert at_frame(curve["curves"]["real"], 16)["single_blob"] == 1.0
    assert at_frame(curve["curves"]["real"], 17) is None


def test_cli_writes_json_and_png(tmp_path):
    out = tmp_path / "curve"
    args = ["eval", "--clips", "2", "--frames", "4", "--curve", "8", "--steps", "1"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["curves"]) == {"real", DEFAULT_MODEL}
    assert [w["last"] for w in report["curves"]["real"]] == [4, 8]
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, says",
    [
        (["--frames", "16", "--curve", "8"], "shorter than one window"),
        (["--curve", "32", "--out", "/no/such/dir/curve"], "output folder does not exist"),
    ],
)
def test_cli_refuses_impossible_curves_in_one_line(args, says):
    result = CliRunner().invoke(cli, ["eval", *args])
    assert result.exit_code != 0 and says in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: EvalSettings(clips=0), "need --clips >= 1, --frames >= 2"),
        (lambda: EvalSettings(frames=1), "need --clips >= 1, --frames >= 2"),
        (lambda: CurveSettings(frames=8, window=16), "--curve 8 is shorter than one window"),
    ],
)
def test_settings_refuse_what_eval_refuses(make, says):
    """The library's settings carry eval's checks: a Python caller gets the CLI's message."""
    from pomexport.errors import ConfigError

    with pytest.raises(ConfigError, match=says):
        make()


def test_curve_paths_need_an_existing_folder(tmp_path):
    assert curve_paths(tmp_path / "c") == (tmp_path / "c.json", tmp_path / "c.png")
    with pytest.raises(Exception, match="output folder does not exist"):
        curve_paths(tmp_path / "no" / "c")
