"""Model configuration: one frozen dataclass that fully describes a PoM-DiT."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pomexport.errors import ConfigError

VARIANTS = ("moments", "powers")  # PoM formulations (models/polynomial.py)
GATES = ("sigmoid", "hardsigmoid")


@dataclass(frozen=True)
class PoMDiTConfig:
    """Architecture of a PoM-DiT.

    ``state_width`` is the PolyMixer state per layer and stream: ``k*e*D`` for ``moments``,
    ``e*D`` for ``powers`` (docs/design.md §1).
    """

    input_size: int = 16  # latent height == width
    in_channels: int = 3
    patch_size: int = 2
    width: int = 96  # D
    depth: int = 4
    order: int = 2  # k
    expansion: int = 2  # e
    variant: str = "moments"
    gate: str = "sigmoid"
    sel_heads: int = 1
    mlp_ratio: float = 4.0
    num_classes: int = 10
    video: bool = True
    text_dim: int = 0  # > 0: cross-PoM on precomputed text embeddings instead of class labels
    class_dropout: float = 0.1  # label == num_classes is the unconditional (CFG) token
    # Stationary state (docs/design.md §2-3): each commit discounts the past by ``decay``;
    # 1.0 is the uniform mean over every committed token (bit for bit).
    decay: float = 1.0
    # The frame-index embedding reads min(frame_index, max_frame_index); None: unbounded.
    max_frame_index: int | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.gate not in GATES:
            raise ConfigError(f"gate must be one of {GATES}, got {self.gate!r}")
        if self.input_size % self.patch_size:
            raise ConfigError(
                f"input_size {self.input_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.order < 1 or self.expansion < 1:
            raise ConfigError("order and expansion must be >= 1")
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"decay must be in (0, 1], got {self.decay}")
        if self.max_frame_index is not None and self.max_frame_index < 0:
            raise ConfigError(f"max_frame_index must be >= 0, got {self.max_frame_index}")
        if self.sel_heads > 1 and (self.variant != "powers" or self.state_width % self.sel_heads):
            raise ConfigError("sel_heads > 1 needs the 'powers' variant and divides the state")

    @property
    def state_width(self) -> int:
        """C: PolyMixer state channels per layer."""
        c = self.expansion * self.width
        return self.order * c if self.variant == "moments" else c

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.input_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    @property
    def gate_width(self) -> int:
        return self.sel_heads if self.sel_heads > 1 else self.state_width

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PoMDiTConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes) -> PoMDiTConfig:
        return dataclasses.replace(self, **changes)
