"""PyTorch reference of PoM-DiT: the Polynomial Mixer, blocks, models, presets, weights.

Names load on first use (PEP 562), so ``pomexport.models.config`` (torch-free, part of the
artifact format) imports without torch.
"""

from __future__ import annotations

from pomexport.lazy import lazy_exports

_LAZY = {
    "BUNDLED": "pomexport.models.registry",
    "DEFAULT_MODEL": "pomexport.models.registry",
    "PRESETS": "pomexport.models.presets",
    "PoMDiT": "pomexport.models.pom_dit",
    "PoMDiTConfig": "pomexport.models.config",
    "PolyMixer": "pomexport.models.mixer",
    "get_preset": "pomexport.models.presets",
    "load_model": "pomexport.models.registry",
    "load_weights": "pomexport.models.weights",
    "poly_mixer": "pomexport.models.poly_mixer_op",
    "poly_mixer_reference": "pomexport.models.poly_mixer_op",
    "random_model": "pomexport.models.registry",
    "read_state_dict": "pomexport.models.weights",
    "save_weights": "pomexport.models.weights",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
