"""Named architectures: ``tiny`` (the bundled demo model) and the DiT family S/B/L/XL.

DiT widths/depths follow the DiT paper (S 384/12, B 768/12, L 1024/24, XL 1152/28) on the
32x32x4 latent of a 256 px SD-VAE image, with patch sizes 2, 4 and 8. The mixer is PoM
order 2, expansion 2 (``moments``), the setting of the PoM paper's DiT experiments.

Latent presets (issue 21): small PoM-DiTs whose input is an autoencoder's latent, to pair
with a decoder (``pomexport build MODEL --decoder DIR``), random weights, CPU-sized:

- ``sd-latent-tiny``: 4 channels, the latent of SD-VAE (``AutoencoderKL``) and TAESD
  (``AutoencoderTiny``); 16x16 latent = 128x128 RGB (x8 spatial), patch 2 (64 tokens per
  frame); one latent frame = one RGB frame (a per-frame image decoder).
- ``wan-latent-tiny``: 16 channels, the latent of the Wan 2.1 VAE (``AutoencoderKLWan``,
  ``z_dim`` 16); 16x16 latent = 128x128 RGB (x8 spatial), patch 2; the first latent frame
  decodes to 1 RGB frame and every later one to 4 (x4 temporal): latent frames at a quarter
  of the RGB frame rate (4 latent fps for 16 fps video).

``LATENTS`` records that per preset, for ``pomexport models`` and the README.
"""

from __future__ import annotations

import dataclasses

from pomexport.errors import ConfigError
from pomexport.models.config import PoMDiTConfig

TINY = PoMDiTConfig(
    input_size=16,
    in_channels=3,
    patch_size=4,
    width=96,
    depth=4,
    order=2,
    expansion=2,
    variant="moments",
    gate="sigmoid",
    num_classes=36,  # models/demo_data.py: 3 shapes x 3 colours x 4 directions
    video=True,
)

_DIT_FAMILY = {"S": (384, 12), "B": (768, 12), "L": (1024, 24), "XL": (1152, 28)}


def _dit(width: int, depth: int, patch: int) -> PoMDiTConfig:
    """A DiT-sized PoM-DiT (same mixer as tiny) on a 32x32x4 latent, ImageNet's 1000 classes."""
    return dataclasses.replace(
        TINY, input_size=32, in_channels=4, patch_size=patch, width=width, depth=depth,
        num_classes=1000,
    )  # fmt: skip


def _latent(channels: int) -> PoMDiTConfig:
    """A tiny-sized video PoM-DiT on a 16x16 latent of ``channels`` channels, patch 2."""
    return dataclasses.replace(TINY, in_channels=channels, patch_size=2, num_classes=10)


# preset -> (autoencoders, latent channels, spatial factor, RGB frames per latent frame).
LATENTS = {
    "sd-latent-tiny": ("AutoencoderKL (SD-VAE), AutoencoderTiny (TAESD)", 4, 8, "1"),
    "wan-latent-tiny": ("AutoencoderKLWan (Wan 2.1 VAE)", 16, 8, "1 for the first, then 4"),
}
PRESETS: dict[str, PoMDiTConfig] = {
    "tiny": TINY,
    "sd-latent-tiny": _latent(4),
    "wan-latent-tiny": _latent(16),
}
for _name, (_width, _depth) in _DIT_FAMILY.items():
    for _patch in (2, 4, 8):
        PRESETS[f"{_name}/{_patch}"] = _dit(_width, _depth, _patch)


def get_preset(name: str) -> PoMDiTConfig:
    """The config of a preset name (``tiny``, ``S/2`` ... ``XL/8``; ``DiT-`` prefix optional)."""
    key = name.removeprefix("DiT-").removeprefix("PoM-DiT-")
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[key]
