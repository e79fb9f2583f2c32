"""The skip policy of tests/conftest.py (issue 23): only a missing GPU or TensorRT skips; any
other skip, of a test or of a whole module, fails. Run on a throw-away suite in a child
pytest, with a copy of the real conftest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CASES = """
import pytest


def test_needs_a_gpu():
    pytest.skip("needs a CUDA GPU")


def test_needs_tensorrt():
    pytest.importorskip("tensorrt_not_here", reason="TensorRT is not installed here")


def test_needs_something_installable():
    pytest.skip("shellcheck not installed")  # not GPU/TensorRT: the policy must fail it


@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
"""
KEEP_GOING = ["--continue-on-collection-errors", "."]
# A whole-module skip for no GPU/TensorRT reason: the policy must fail it too.
MODULE_SKIP = "import pytest\n\n" + (
    'pytest.skip("needs the network", allow_module_level=True)\n'  # not GPU/TensorRT: must fail
)


def test_only_gpu_and_tensorrt_skips_pass(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *KEEP_GOING],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1, done.stdout + done.stderr
    for count in ("1 failed", "2 skipped", "1 xfailed", "1 error"):
        assert count in summary, done.stdout
    assert "shellcheck not installed\nOnly a missing GPU or TensorRT" in done.stdout
    assert "needs the network" in done.stdout
