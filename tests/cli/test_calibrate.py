"""``pomexport calibrate``: bad input is one line and exit status 1, nothing written."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-model"], "unknown model 'no-such-model'"),
        (["tiny", "--samples", "0"], "samples, frames and steps must be >= 1"),
        (["tiny", "--labels", "1,x"], "--labels takes comma-separated integers"),
        (["tiny", "--labels", "999"], "labels [999] out of range"),
        (["tiny", "--keep-float", "-1"], "keep_float must be >= 0"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, args, message):
    out = tmp_path / "int8"
    result = CliRunner().invoke(cli, ["calibrate", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_unknown_method_is_refused_by_the_option(tmp_path):
    result = CliRunner().invoke(cli, ["calibrate", "tiny", "--method", "mse"])
    assert result.exit_code == 2 and "Invalid value for '--method'" in result.output
