"""``export/artifact/options.py``: the one batch-range parser and the one default directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from pomexport.errors import ConfigError
from pomexport.export.artifact.options import check_batch, default_artifact_dir, parse_batch


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1:1:8", (1, 1, 8)), ("1:4:16", (1, 4, 16)), ("4", (4, 4, 4)), (" 2 : 2 : 3 ", (2, 2, 3))],
)
def test_accepts_a_range_or_one_fixed_batch(text, expected):
    assert parse_batch(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "1:2",
            "--batch wants MIN:OPT:MAX (e.g. 1:1:8) or one number N (N:N:N), got '1:2': 2 fields",
        ),
        ("a:b", "--batch wants MIN:OPT:MAX"),
        ("x", "--batch takes MIN:OPT:MAX (e.g. 1:1:8) or one number N, got 'x': not whole numbers"),
        ("1:1.5:8", "not whole numbers"),
        ("2:1:4", "--batch must satisfy 1 <= MIN <= OPT <= MAX, got 2:1:4"),
        ("0", "--batch must satisfy 1 <= MIN <= OPT <= MAX, got 0:0:0"),
    ],
)
def test_says_what_it_rejects(text, message):
    with pytest.raises(ConfigError) as e:
        parse_batch(text)
    assert message in str(e.value)


def test_check_batch_is_the_same_rule_for_tuples():
    assert check_batch((1, 2, 4)) == (1, 2, 4)
    with pytest.raises(ConfigError, match="must satisfy"):
        check_batch((8, 2, 4))


def test_default_artifact_dir(tmp_path):
    weights = tmp_path / "small.safetensors"
    weights.write_bytes(b"")
    assert default_artifact_dir("tiny") == Path("build/tiny")
    assert default_artifact_dir("S/2", "int8") == Path("build/S-2-int8")
    assert default_artifact_dir(weights, "fp16") == Path("build/small-fp16")
    assert default_artifact_dir("not/there.safetensors") == Path("build/there")
