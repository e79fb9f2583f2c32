"""Shared fixtures: small models of both PoM variants with non-trivial random weights."""

from __future__ import annotations

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
    """One fp32 artifact (both flavors) built once per session by ``pomexport.runtime.build``:
    the bundled model when its weights are installed, else the ``tiny`` preset (seed 0).
    Returns ``(artifact, model_name)``; tests that modify it copy it first."""
    from pomexport.models.registry import DEFAULT_MODEL, bundled_path
    from pomexport.runtime.build import build

    name = DEFAULT_MODEL if bundled_path(DEFAULT_MODEL).is_file() else "tiny"
    out = tmp_path_factory.mktemp("ort") / "artifact"
    return build(name, out, precision="fp32", backend="ort").artifact, name
