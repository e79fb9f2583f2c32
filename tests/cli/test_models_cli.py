"""`pomexport --help` and `pomexport models` from the installed console script and CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.models import PRESETS


def test_models_lists_every_preset_with_state_size():
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert set(PRESETS) <= set(rows)
    s2 = rows["S/2"]
    assert s2["width"] == 384 and s2["depth"] == 12 and s2["tokens_per_frame"] == 256
    # moments: C = k*e*D = 2*2*384 per layer, fp32, 12 layers, plus the count
    assert s2["state_kib_per_stream"] == pytest.approx((12 * 1536 + 1) * 4 / 1024)
    assert 30 < s2["params_m"] < 60


@pytest.mark.parametrize("args", [["--help"], ["models"], ["generate", "--help"]])
def test_console_script(args, tmp_path):
    # pip puts it beside the interpreter of the environment it installs into (also when that
    # virtualenv is not activated, so PATH may not have it)
    script = Path(sys.executable).with_name("pomexport")
    assert script.is_file(), f"console script not installed at {script} (pip install .)"
    proc = subprocess.run(
        [str(script), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout or "XL/2" in proc.stdout
