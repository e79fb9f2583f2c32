"""PyTorch reference of PoM-DiT: the Polynomial Mixer, blocks, models, presets, weights."""

from pomexport.models.config import PoMDiTConfig
from pomexport.models.mixer import PolyMixer
from pomexport.models.poly_mixer_op import poly_mixer, poly_mixer_reference
from pomexport.models.pom_dit import PoMDiT
from pomexport.models.presets import PRESETS, get_preset
from pomexport.models.registry import BUNDLED, DEFAULT_MODEL, load_model, random_model
from pomexport.models.weights import load_weights, read_state_dict, save_weights

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "PRESETS",
    "PoMDiT",
    "PoMDiTConfig",
    "PolyMixer",
    "get_preset",
    "load_model",
    "load_weights",
    "poly_mixer",
    "poly_mixer_reference",
    "random_model",
    "read_state_dict",
    "save_weights",
]
