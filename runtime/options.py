"""What a generation run is asked for, validated on construction (ConfigError on bad values).

Torch-free, so ``pomexport generate`` refuses a bad option before importing torch; the CLI and
a Python user construct the same objects and get the same errors. Messages name the option
as the command line spells it (``--frames``), the field of the same name here.

- :class:`SamplerSettings`: steps, CFG scale, seed, sampler, time shift.
- :class:`GenerateOptions`: frames, labels (one stream each), the sampler, and how the clip
  is written (``scale``, ``fps``).
- :func:`parse_ints`, :func:`parse_names`: the comma lists of the command line (``1,16,64``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pomexport.errors import ConfigError
from pomexport.runtime.choices import SAMPLERS

__all__ = ["GenerateOptions", "SamplerSettings", "parse_ints", "parse_names"]


def parse_names(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``: comma-separated, blanks dropped."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_ints(text: str, option: str) -> tuple[int, ...]:
    """``"1,16,64"`` -> ``(1, 16, 64)``; ConfigError naming ``option`` for anything else."""
    try:
        return tuple(int(v) for v in parse_names(text))
    except ValueError as e:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from e


def at_least(option: str, value: float, low: float, *, strict: bool = False) -> None:
    """ConfigError ``--option must be >= low`` (``> low`` when ``strict``) unless it holds."""
    if value < low or (strict and value == low):
        raise ConfigError(f"{option} must be {'>' if strict else '>='} {low}, got {value}")


@dataclass(frozen=True)
class SamplerSettings:
    """How each frame is denoised: ``steps`` rectified-flow steps of ``sampler`` on a
    schedule shifted by ``shift`` (1 = uniform), classifier-free guidance ``cfg_scale``
    (1 = off), noise seeded by ``seed`` (stream ``i`` by (seed, i))."""

    steps: int = 20
    cfg_scale: float = 2.0
    seed: int = 0
    sampler: str = "euler"
    shift: float = 1.0

    def __post_init__(self) -> None:
        at_least("--steps", self.steps, 1)
        at_least("--seed", self.seed, 0)
        at_least("--shift", self.shift, 0, strict=True)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; known: {', '.join(SAMPLERS)}")

    def as_kwargs(self) -> dict:
        """The keyword arguments of :func:`pomexport.runtime.generate` / ``generate_frames``."""
        return {
            "steps": self.steps,
            "cfg_scale": self.cfg_scale,
            "seed": self.seed,
            "sampler": self.sampler,
            "shift": self.shift,
        }


@dataclass(frozen=True)
class GenerateOptions:
    """A clip: ``frames`` frames of one stream per label, all in one batch, sampled with
    ``sampling``; written upscaled by ``scale`` (default: frames >= 256 px) at ``fps``;
    ``lossless``: an .mp4 whose frames decode bit-exact (runtime/writers.py)."""

    frames: int = 16
    labels: tuple[int, ...] = (0,)
    sampling: SamplerSettings = field(default_factory=SamplerSettings)
    scale: int | None = None
    fps: float = 8.0
    lossless: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(int(label) for label in self.labels or (0,)))
        at_least("--frames", self.frames, 1)
        if self.scale is not None:
            at_least("--scale", self.scale, 1)
        at_least("--fps", self.fps, 0, strict=True)

    def check_labels(self, num_classes: int, model: object) -> None:
        """ConfigError unless every label is a class of ``model`` (``num_classes`` of them)."""
        check_labels(self.labels, num_classes, model)


def check_labels(labels: Sequence[int], num_classes: int, model: object) -> None:
    """ConfigError naming the first label outside ``[0, num_classes)``."""
    bad = [label for label in labels if not 0 <= label < num_classes]
    if bad:
        raise ConfigError(f"label {bad[0]} out of range [0, {num_classes}) for model {model}")
