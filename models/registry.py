"""Resolve a model name: the bundled model, a preset (random init), or a weights file."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from pomexport.errors import ConfigError
from pomexport.models.pom_dit import PoMDiT
from pomexport.models.presets import PRESETS, get_preset
from pomexport.models.weights import load_weights

BUNDLED = {"pom-dit-video-tiny": "pom-dit-video-tiny.safetensors"}
DEFAULT_MODEL = "pom-dit-video-tiny"


def bundled_path(name: str) -> Path:
    """Path of a bundled model's weights inside the installed package."""
    return Path(str(resources.files("pomexport.models") / "weights" / BUNDLED[name]))


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Redraw every parameter deterministically by seed (matrices ~ 1/sqrt(fan_in), vectors
    small), in eval mode.

    The zero-initialised adaLN/output layers are re-drawn too, so that an untrained model is
    not the constant zero function (which would make every comparison vacuous).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1]) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def random_model(preset: str, seed: int = 0) -> PoMDiT:
    """A preset with random weights, deterministic by seed (see :func:`randomize`)."""
    return randomize(PoMDiT(get_preset(preset)), seed)


def load_model(name: str | os.PathLike = DEFAULT_MODEL, seed: int = 0) -> PoMDiT:
    """``pom-dit-video-tiny`` (bundled, trained), a preset name (random), or a weights path."""
    key = str(name)
    if key in BUNDLED:
        return load_weights(bundled_path(key))
    if key.removeprefix("DiT-") in PRESETS:
        return random_model(key, seed)
    if Path(key).exists():
        return load_weights(key)
    raise ConfigError(
        f"unknown model {key!r}: not a bundled model ({', '.join(BUNDLED)}), "
        f"a preset ({', '.join(PRESETS)}) or an existing weights file"
    )
