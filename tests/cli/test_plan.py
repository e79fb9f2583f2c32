"""``pomexport plan`` through click's CliRunner: table, JSON numbers, errors as one line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.models import get_preset
from pomexport.runtime.measure.plan import TARGETS, plan


def test_json_equals_the_library():
    result = CliRunner().invoke(
        cli, ["plan", "S/2", "--target", "agx-orin-64gb", "--precision", "fp16", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    (row,) = data["budgets"]
    expected = plan(get_preset("S/2"), TARGETS["agx-orin-64gb"], "fp16", model="S/2")
    assert row == expected.as_dict()
    assert data["target"]["total_mib"] == 64 * 1024


def test_table_lists_default_models_and_verdicts():
    result = CliRunner().invoke(cli, ["plan"])
    assert result.exit_code == 0, result.output
    for name in ("pom-dit-video-tiny", "S/2", "XL/2"):
        assert name in result.output
    assert "run only (build off-device)" in result.output  # XL/2 fp16 on an Orin Nano
    assert "available" in result.output


def test_help_has_the_formula():
    result = CliRunner().invoke(cli, ["plan", "--help"])
    assert "B * N * (2D + max(3C, 2H)) * a" in result.output


def test_bad_batch_is_one_line_error():
    result = CliRunner().invoke(cli, ["plan", "tiny", "--streams", "3", "--batch", "4"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: 3 stream(s) need 6 batch rows (CFG doubles them) but the profile's max batch is 4"
    )
