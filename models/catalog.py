"""A table of the models pomexport knows: the bundled one and every preset."""

from __future__ import annotations

import json

from pomexport.models.config import PoMDiTConfig
from pomexport.models.pom_dit import PoMDiT
from pomexport.models.presets import LATENTS, PRESETS
from pomexport.models.registry import BUNDLED, bundled_path
from pomexport.models.weights import CONFIG_KEY, read_state_dict


def parameter_count(cfg: PoMDiTConfig) -> int:
    """Parameters of a config, counted on the meta device (no memory allocated)."""
    import torch

    with torch.device("meta"):
        model = PoMDiT(cfg)
    return sum(p.numel() for p in model.parameters())


def _row(name: str, kind: str, cfg: PoMDiTConfig) -> dict:
    return {
        "name": name,
        "kind": kind,
        "params_m": parameter_count(cfg) / 1e6,
        "width": cfg.width,
        "depth": cfg.depth,
        "tokens_per_frame": cfg.tokens_per_frame,
        "variant": cfg.variant,
        "order": cfg.order,
        "expansion": cfg.expansion,
        # fp32 state: L layers x C channels, plus the fp32 count.
        "state_kib_per_stream": (cfg.depth * cfg.state_width + 1) * 4 / 1024,
        "in_channels": cfg.in_channels,
        "patch_size": cfg.patch_size,
    }


def model_catalog() -> list[dict]:
    """One row per bundled model (if its weights are installed) and per preset."""
    rows = []
    for name in BUNDLED:
        path = bundled_path(name)
        if path.is_file():
            _, meta = read_state_dict(path)
            rows.append(_row(name, "bundled", PoMDiTConfig.from_dict(json.loads(meta[CONFIG_KEY]))))
    rows.extend(_row(name, "preset", cfg) for name, cfg in PRESETS.items())
    for row in rows:
        if row["name"] in LATENTS:  # the autoencoder a latent preset pairs with (issue 21)
            autoencoders, channels, spatial, frames = LATENTS[row["name"]]
            row["latent"] = {
                "autoencoders": autoencoders,
                "channels": channels,
                "spatial_factor": spatial,
                "rgb_frames_per_latent_frame": frames,
            }
    return rows
