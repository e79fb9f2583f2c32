"""Option values that name an artifact: its batch profile and its default directory.

One parser for the batch range (``pomexport build/export/calibrate --batch``, the manifest's
``batch``) and one naming scheme for the directory a command writes when not told where, so
the CLI and a Python user get the same values and the same errors. Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

from pomexport.errors import ConfigError

__all__ = ["BUILD_DIR", "DEFAULT_BATCH", "check_batch", "default_artifact_dir", "parse_batch"]

DEFAULT_BATCH = (1, 1, 8)
BUILD_DIR = Path("build")
_WEIGHTS = (".safetensors", ".pt")


def parse_batch(text: str, option: str = "--batch") -> tuple[int, int, int]:
    """``"MIN:OPT:MAX"`` -> (min, opt, max), or one number ``"N"`` for a fixed batch
    (N:N:N). Whole numbers with ``1 <= MIN <= OPT <= MAX``; anything else is a ConfigError
    saying what was wrong: the count of fields, a field that is not a whole number, the order.
    """
    parts = [p.strip() for p in str(text).split(":")]
    if len(parts) not in (1, 3):
        raise ConfigError(
            f"{option} wants MIN:OPT:MAX (e.g. 1:1:8) or one number N (N:N:N), got {text!r}: "
            f"{len(parts)} fields"
        )
    try:
        values = [int(p) for p in parts]
    except ValueError as e:
        raise ConfigError(
            f"{option} takes MIN:OPT:MAX (e.g. 1:1:8) or one number N, got {text!r}: "
            "not whole numbers"
        ) from e
    lo, opt, hi = values * 3 if len(values) == 1 else values
    return check_batch((lo, opt, hi), option)


def check_batch(batch: tuple[int, int, int], option: str = "--batch") -> tuple[int, int, int]:
    """``batch`` as a tuple when ``1 <= MIN <= OPT <= MAX``, else a ConfigError."""
    lo, opt, hi = batch
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"{option} must satisfy 1 <= MIN <= OPT <= MAX, got {lo}:{opt}:{hi}")
    return lo, opt, hi


def default_artifact_dir(model: str | os.PathLike, tag: str = "") -> Path:
    """Where a command writes the artifact of ``model`` when not told: ``build/<name>``, or
    ``build/<name>-<tag>`` (``build/tiny-int8``). A weights file is named by its stem, a
    preset by its name with ``/`` as ``-`` (``S/2`` -> ``S-2``)."""
    path = Path(model)
    if path.suffix in _WEIGHTS or path.is_file():
        name = path.stem
    else:
        name = str(model).replace("/", "-")
    return BUILD_DIR / (f"{name}-{tag}" if tag else name)
