"""The artifact core and the commands that only read artifacts and bundles need no torch
(issue 19): each runs in a subprocess where importing torch (and, for the core, onnx and
onnxruntime too) fails."""

from __future__ import annotations

import subprocess
import sys

import pytest

BLOCK = "import sys\nfor name in {blocked}: sys.modules[name] = None\n"
CLI = "from pomexport.cli.main import main\nsys.argv[0] = 'pomexport'\nmain()\n"


def _run(code: str, *args: str, blocked=("torch",)) -> subprocess.CompletedProcess:
    script = BLOCK.format(blocked=tuple(blocked)) + code
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )


def test_the_artifact_core_imports_without_torch_onnx_and_onnxruntime():
    code = (
        "import pomexport.export.artifact as core\n"
        "from pomexport.export.artifact import edit, engines, gates, signing, limits, schema\n"
        "assert core.PRECISIONS and core.load_artifact and core.ArtifactDraft\n"
    )
    done = _run(code, blocked=("torch", "onnx", "onnxruntime", "onnx_ir", "onnxscript"))
    assert done.returncode == 0, done.stderr


def test_help_runs_without_torch():
    done = _run(CLI, "--help")
    assert done.returncode == 0, done.stderr
    assert "inspect" in done.stdout and "verify-bundle" in done.stdout


def test_inspect_runs_without_torch(ort_artifact):
    done = _run(CLI, "inspect", str(ort_artifact[0].root))
    assert done.returncode == 0, done.stderr
    assert "model.onnx" in done.stdout


@pytest.fixture(scope="module")
def bundle(ort_artifact, tmp_path_factory):
    from pomexport.export.bundle import package

    out = tmp_path_factory.mktemp("bundle") / "m.tar.gz"
    package(ort_artifact[0].root, "jetson-orin-jp6", out)
    return out


def test_verify_bundle_runs_without_torch(bundle, tmp_path):
    done = _run(CLI, "verify-bundle", str(bundle), "--extract", str(tmp_path / "x"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "x").is_dir()
