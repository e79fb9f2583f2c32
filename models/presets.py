"""Named architectures: ``tiny`` (the bundled demo model) and the DiT family S/B/L/XL.

DiT widths/depths follow the DiT paper (S 384/12, B 768/12, L 1024/24, XL 1152/28) on the
32x32x4 latent of a 256 px SD-VAE image, with patch sizes 2, 4 and 8. The mixer is PoM
order 2, expansion 2 (``moments``), the setting of the PoM paper's DiT experiments.
"""

from __future__ import annotations

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
    return PoMDiTConfig(
        input_size=32,
        in_channels=4,
        patch_size=patch,
        width=width,
        depth=depth,
        order=2,
        expansion=2,
        variant="moments",
        gate="sigmoid",
        num_classes=1000,
        video=True,
    )


PRESETS: dict[str, PoMDiTConfig] = {"tiny": TINY}
for _name, (_width, _depth) in _DIT_FAMILY.items():
    for _patch in (2, 4, 8):
        PRESETS[f"{_name}/{_patch}"] = _dit(_width, _depth, _patch)


def get_preset(name: str) -> PoMDiTConfig:
    """The config of a preset name (``tiny``, ``S/2`` ... ``XL/8``; ``DiT-`` prefix optional)."""
    key = name.removeprefix("DiT-").removeprefix("PoM-DiT-")
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[key]
