"""Exported artifacts shared by the export tests (each export takes seconds: export once).

Models: the ``tiny`` preset made smaller (depth 2, 8x8 latents, so 16 tokens per frame)
in the ``moments`` variant, and a ``powers`` config (hardsigmoid gate, 4 selection heads),
both with fan-in-scaled random weights like ``pomexport.models.random_model``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import pytest
import torch

from pomexport.models import PoMDiT, get_preset

SMALL = get_preset("tiny").replace(depth=2, input_size=8)
CONFIGS = {
    "moments": SMALL,
    "powers": SMALL.replace(variant="powers", gate="hardsigmoid", order=2, sel_heads=4),
}


def scaled_model(variant: str, seed: int = 0) -> PoMDiT:
    """Random weights scaled by 1/sqrt(fan_in) (adaLN-zero layers too, so all paths matter)."""
    gen = torch.Generator().manual_seed(seed)
    model = PoMDiT(CONFIGS[variant])
    with torch.no_grad():
        for p in model.parameters():
            scale = (1.0 / p.shape[-1]) ** 0.5 if p.dim() > 1 else 0.02
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model.eval()


@pytest.fixture(scope="session", autouse=True)
def _quiet_exporter():
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def models() -> dict[str, PoMDiT]:
    return {name: scaled_model(name) for name in CONFIGS}


@pytest.fixture(scope="session")
def fp32_artifacts(models, tmp_path_factory):
    """Portable + plugin fp32 artifacts of both variants (batch 1..8)."""
    from pomexport.export import export_model

    root = tmp_path_factory.mktemp("fp32")
    return {
        name: export_model(model, root / name, "fp32", "both", batch=(1, 2, 8))
        for name, model in models.items()
    }


@pytest.fixture(scope="session")
def fp16_artifact(models, tmp_path_factory):
    """The moments model in fp16, both flavors."""
    from pomexport.export import export_model

    out = tmp_path_factory.mktemp("fp16") / "moments"
    return export_model(models["moments"], out, "fp16", "both", batch=(1, 2, 8))


@dataclass
class WriteCounts:
    """Names of the files hashed and the manifest.json writes seen while it was installed."""

    hashed: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)


@pytest.fixture
def write_counts(monkeypatch) -> WriteCounts:
    """Count every file hash (each binding of the one hasher, ``paths.sha256_file``) and every
    manifest.json write (atomic writes end in ``os.replace``); ``monkeypatch.undo()`` stops."""
    from pomexport.export.artifact import MANIFEST, paths

    counts = WriteCounts()
    original_hash, original_replace = paths.sha256_file, os.replace

    def counting_hash(path):
        counts.hashed.append(path.name)
        return original_hash(path)

    def counting_replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == MANIFEST:
            counts.manifests.append(dst)
        return original_replace(src, dst, *args, **kwargs)

    for module in list(sys.modules.values()):
        if getattr(module, "sha256_file", None) is original_hash:
            monkeypatch.setattr(module, "sha256_file", counting_hash)
    monkeypatch.setattr(os, "replace", counting_replace)
    return counts
