"""``runtime/options.py``: generation options validate on construction, torch-free, with the
CLI's own messages (the CLI only prints them)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pomexport.errors import ConfigError
from pomexport.runtime.options import GenerateOptions, SamplerSettings, parse_ints, parse_names


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SamplerSettings(steps=0), "--steps must be >= 1, got 0"),
        (lambda: SamplerSettings(seed=-1), "--seed must be >= 0, got -1"),
        (lambda: SamplerSettings(shift=0.0), "--shift must be > 0, got 0.0"),
        (lambda: SamplerSettings(sampler="ddim"), "unknown sampler 'ddim'; known: euler, heun"),
        (lambda: GenerateOptions(frames=0), "--frames must be >= 1, got 0"),
        (lambda: GenerateOptions(scale=0), "--scale must be >= 1, got 0"),
        (lambda: GenerateOptions(fps=0.0), "--fps must be > 0, got 0.0"),
    ],
)
def test_bad_values_are_refused_on_construction(make, message):
    with pytest.raises(ConfigError) as e:
        make()
    assert str(e.value) == message


def test_defaults_are_the_commands_and_labels_default_to_one_stream():
    options = GenerateOptions(labels=())
    assert options.labels == (0,) and options.frames == 16
    assert options.sampling.as_kwargs() == {
        "steps": 20, "cfg_scale": 2.0, "seed": 0, "sampler": "euler", "shift": 1.0,
    }  # fmt: skip


def test_labels_are_checked_against_the_model():
    options = GenerateOptions(labels=(1, 9))
    options.check_labels(10, "m")
    with pytest.raises(ConfigError, match=r"label 9 out of range \[0, 9\) for model m"):
        options.check_labels(9, "m")


def test_comma_lists():
    assert parse_ints(" 1, 16,,64 ", "--frames") == (1, 16, 64)
    assert parse_ints("", "--seeds") == ()
    assert parse_names("tiny, S/4,") == ("tiny", "S/4")
    with pytest.raises(ConfigError, match="--labels takes comma-separated integers, got '1,x'"):
        parse_ints("1,x", "--labels")


def test_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from pomexport.runtime.options import GenerateOptions; GenerateOptions()"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
