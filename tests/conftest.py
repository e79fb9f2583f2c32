"""Shared fixtures: small models of both PoM variants with non-trivial random weights; the
skip policy (issue 23)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from pomexport.models import PoMDiT, PoMDiTConfig

VARIANTS = {
    "moments": dict(variant="moments", gate="sigmoid"),
    "powers": dict(variant="powers", gate="hardsigmoid"),
    "powers-heads": dict(variant="powers", gate="hardsigmoid", sel_heads=4),
}


def _make_model(variant: str = "moments", seed: int = 0, **changes) -> PoMDiT:
    """A tiny-sized PoM-DiT whose adaLN-zero layers are not zero (so every path matters)."""
    # Pinned here (not the `tiny` preset, which follows the bundled model's training).
    cfg = PoMDiTConfig(
        input_size=16,
        in_channels=3,
        patch_size=2,
        width=32,
        depth=2,
        num_classes=10,
        **VARIANTS[variant],
    ).replace(**changes)
    torch.manual_seed(seed)
    model = PoMDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.05)
    return model.eval()


# A skip is for what this kind of machine cannot have: a GPU, TensorRT, TensorRT's headers.
# Anything else a test needs (nvcc, cmake, shellcheck, triton, a tritonserver that starts, the
# bundled weights) scripts/test.sh installs, so its absence is a failure. A skip whose reason
# names neither a GPU nor TensorRT is turned into a failure here, so none can creep in.
ALLOWED_SKIP = re.compile(r"\bGPU\b|TensorRT")


def _disallowed_skip(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip the policy refuses (None: not a skip, an xfail, or allowed)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return None if ALLOWED_SKIP.search(reason) else reason


def _fail_disallowed_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _disallowed_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"{reason}\nOnly a missing GPU or TensorRT may skip a test (tests/conftest.py, "
            "issue 23): install what is missing (scripts/test.sh) or make it a failure."
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_disallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_disallowed_skip(outcome.get_result())


@pytest.fixture(scope="session")
def nvcc() -> str:
    """nvcc's path. Machines of this kind have the CUDA toolkit (docs/design.md §7: CI compiles the
    CUDA kernels, nvcc 13 is installed), so a missing nvcc fails instead of skipping."""
    found = shutil.which("nvcc")
    assert found, "nvcc (CUDA toolkit) not found on PATH (e.g. /usr/local/cuda/bin)"
    return found


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture
def make_model():
    """Factory: ``make_model(variant, seed=0, **config_changes) -> PoMDiT`` (eval mode)."""
    return _make_model


@pytest.fixture(scope="session")
def ort_artifact(tmp_path_factory):
    """One fp32 artifact (both flavors) built once per session by ``pomexport.export.pipeline``:
    the bundled model when its weights are installed, else the ``tiny`` preset (seed 0).
    Returns ``(artifact, model_name)``; tests that modify it copy it first."""
    from pomexport.export.pipeline import build
    from pomexport.models.registry import DEFAULT_MODEL, bundled_path

    name = DEFAULT_MODEL if bundled_path(DEFAULT_MODEL).is_file() else "tiny"
    out = tmp_path_factory.mktemp("ort") / "artifact"
    return build(name, out, precision="fp32", backend="ort").artifact, name


@pytest.fixture(scope="session")
def stationary_artifact(tmp_path_factory):
    """A stationary-state model (issue 18: decay 0.6, max_frame_index 2; the random weights of
    ``make_model("moments")``) and its fp32 artifact, both flavors, batch 1..8, exported once
    per session. Returns ``(artifact, model)``; tests that modify it copy it first."""
    from pomexport.export import export_model

    model = _make_model("moments", decay=0.6, max_frame_index=2)
    out = tmp_path_factory.mktemp("stationary") / "fp32"
    return export_model(model, out, "fp32", "both", batch=(1, 2, 8)), model
