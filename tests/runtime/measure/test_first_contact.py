"""First contact (runtime/measure/first_contact.py, scripts/trt_first_contact.sh): what runs without
TensorRT — the creator check, the frame comparison, the one-line verdict, and the script
refusing a machine without TensorRT. The TensorRT part itself runs where TensorRT is."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pomexport.runtime.measure.first_contact import (
    CreatorCheck,
    FirstContactReport,
    FlavorResult,
    check_creators,
    frame_psnr,
)

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "trt_first_contact.sh"
OURS = ("PolyMixer", "1", "pomexport")
TRT_PLUGINS = [("ROIAlign_TRT", "1", ""), ("EfficientNMS_TRT", "1", "")]


def test_creator_check_wants_exactly_our_one_creator():
    assert check_creators(TRT_PLUGINS, [*TRT_PLUGINS, OURS]).added == (OURS,)
    assert check_creators(TRT_PLUGINS, [*TRT_PLUGINS, OURS])
    # the old library: the same creator twice, under "pomexport" and ""
    old = check_creators(TRT_PLUGINS, [*TRT_PLUGINS, OURS, ("PolyMixer", "1", "")])
    assert not old and "expected" in old.problems[0]
    twice = check_creators([OURS], [OURS, OURS])
    assert not twice and any("more than once" in p for p in twice.problems)
    nothing = check_creators(TRT_PLUGINS, TRT_PLUGINS)
    assert not nothing and nothing.added == ()


def test_frame_psnr_per_frame():
    rng = np.random.default_rng(0)
    clip = rng.uniform(-1, 1, size=(2, 3, 3, 8, 8))
    assert frame_psnr(clip, clip) == [math.inf] * 3
    shifted = clip.copy()
    shifted[:, 1] = np.clip(shifted[:, 1] + 2 / 255, -1, 1)  # about one uint8 step, frame 1
    values = frame_psnr(shifted, clip)
    assert values[0] == values[2] == math.inf and 40 < values[1] < 49
    with pytest.raises(ValueError, match="shapes differ"):
        frame_psnr(clip[:, :2], clip)


def _report(plugin_psnr: float, portable_error: str | None = None) -> FirstContactReport:
    flavors = [
        FlavorResult("plugin", 12.3, [50.0, plugin_psnr]),
        FlavorResult("portable", 20.0, [45.0, 44.0], error=portable_error),
    ]
    return FirstContactReport("10.3.0", "Orin", CreatorCheck((OURS,), ()), flavors, 40.0, 2)


def test_report_is_one_line_and_passes_only_when_every_check_does():
    good = _report(41.5)
    assert good and "\n" not in good.summary
    assert good.summary.startswith("first contact PASS: TensorRT 10.3.0 on Orin | plugin OK")
    assert "plugin: built 12 s, 2 frames, PSNR min 41.5 dB vs ONNX Runtime CPU" in good.summary
    assert not _report(39.0) and _report(39.0).summary.startswith("first contact FAIL")
    assert not _report(math.nan)
    failed = _report(41.5, portable_error="BuildError: Plugin not found")
    assert not failed and "portable: FAILED (BuildError: Plugin not found)" in failed.summary
    bad_plugin = _report(41.5)
    bad_plugin.creators = CreatorCheck((), ("the library registered [], expected ...",))
    assert not bad_plugin and "plugin: the library registered []" in bad_plugin.summary


def test_script_is_valid_shell_and_refuses_a_machine_without_tensorrt(tmp_path):
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    # A python that cannot import tensorrt (this machine's; or one made so where it can).
    shim = tmp_path / "python"
    shim.write_text(f'#!/bin/sh\nexec {shutil.which("python3")} -S -c "import sys; sys.exit(1)"\n')
    shim.chmod(0o755)
    done = subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, "PYTHON": str(shim)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot run here: the TensorRT Python bindings are not importable" in done.stderr
