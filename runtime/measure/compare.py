"""Numeric comparison of step outputs against a reference, Polygraphy style.

:func:`compare_outputs` returns a :class:`CompareResult`: truthy when every output is within
its :class:`Tolerance`, carrying one :class:`OutputError` per output (max abs, mean abs,
relative error, cosine similarity, count of non-finite values). A NaN or Inf in the compared
output is reported as such (``nonfinite > 0``, errors NaN), never as a large finite error.

Relative error is norm-wise, ``max|a - r| / max|r|``: element-wise ``|a - r| / |r|`` explodes
where the reference crosses zero, which every velocity field does somewhere.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from pomexport.export.artifact.gates import Tolerance

__all__ = [
    "CompareResult",
    "OutputError",
    "Tolerance",
    "compare_outputs",
    "output_error",
    "psnr",
    "to_uint8",
]

_TINY = 1e-30


@dataclass(frozen=True)
class OutputError:
    """Errors of one output against its reference (NaN when either side is not finite)."""

    name: str
    max_abs: float
    mean_abs: float
    rel: float
    cosine: float
    nonfinite: int  # NaN/Inf elements in the compared output
    ref_nonfinite: int  # NaN/Inf elements in the reference
    failures: tuple[str, ...] = field(default=())

    @property
    def is_nan(self) -> bool:
        return self.nonfinite > 0 or self.ref_nonfinite > 0

    def __bool__(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return asdict(self)


def output_error(name: str, actual, reference, tol: Tolerance | None = None) -> OutputError:
    """Errors of ``actual`` against ``reference`` (any array-likes of the same size)."""
    a = np.asarray(actual, dtype=np.float64).ravel()
    r = np.asarray(reference, dtype=np.float64).ravel()
    if a.shape != r.shape:
        raise ValueError(f"{name}: {a.size} values compared with {r.size}")
    bad_a, bad_r = int(np.count_nonzero(~np.isfinite(a))), int(np.count_nonzero(~np.isfinite(r)))
    if bad_a or bad_r:
        nan = math.nan
        side = "output" if bad_a else "reference"
        count = bad_a or bad_r
        why = f"{name}: NaN/Inf in the {side} ({count} of {a.size} values)"
        return OutputError(name, nan, nan, nan, nan, bad_a, bad_r, (why,))
    diff = np.abs(a - r)
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = max_abs / max(float(np.abs(r).max()) if r.size else 0.0, _TINY)
    norms = float(np.linalg.norm(a) * np.linalg.norm(r))
    # Two zero vectors are identical: cosine 1, not 0/0.
    cosine = float(a @ r) / norms if norms > 0 else (1.0 if max_abs == 0 else 0.0)
    mean_abs = float(diff.mean()) if diff.size else 0.0
    failures = _failures(name, max_abs, rel, cosine, tol or Tolerance())
    return OutputError(name, max_abs, mean_abs, rel, cosine, 0, 0, failures)


def _failures(name: str, max_abs: float, rel: float, cosine: float, tol: Tolerance) -> tuple:
    out = []
    if tol.max_abs is not None and max_abs > tol.max_abs:
        out.append(f"{name}: max abs error {max_abs:.3g} > {tol.max_abs:.3g}")
    if tol.rel is not None and rel > tol.rel:
        out.append(f"{name}: relative error {rel:.3g} > {tol.rel:.3g}")
    if tol.cosine_min is not None and cosine < tol.cosine_min:
        out.append(f"{name}: cosine similarity {cosine:.9f} < {tol.cosine_min:.9f}")
    return tuple(out)


@dataclass(frozen=True)
class CompareResult:
    """Per-output errors; truthy when every output passes its tolerance."""

    outputs: dict[str, OutputError]

    def __bool__(self) -> bool:
        return all(self.outputs.values())

    @property
    def failures(self) -> list[str]:
        return [f for err in self.outputs.values() for f in err.failures]

    @property
    def has_nan(self) -> bool:
        return any(err.is_nan for err in self.outputs.values())

    def __getitem__(self, name: str) -> OutputError:
        return self.outputs[name]

    def to_dict(self) -> dict:
        return {name: err.to_dict() for name, err in self.outputs.items()}


def compare_outputs(
    actual: Mapping[str, object],
    reference: Mapping[str, object],
    tolerances: Mapping[str, Tolerance] | None = None,
) -> CompareResult:
    """Compare every output of ``reference`` with the same-named one of ``actual``.

    ``tolerances`` maps an output name to its bounds (missing: measured, never failing).
    """
    tolerances = tolerances or {}
    missing = [name for name in reference if name not in actual]
    if missing:
        raise KeyError(f"outputs missing from the compared side: {missing}")
    return CompareResult(
        {
            name: output_error(name, actual[name], ref, tolerances.get(name))
            for name, ref in reference.items()
        }
    )


def to_uint8(x) -> np.ndarray:
    """Decode an image in [-1, 1] to uint8: ``round((x + 1) * 127.5)``, clipped."""
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def psnr(actual, reference, peak: float = 255.0) -> float:
    """PSNR in dB; ``inf`` when identical, NaN when either side has NaN/Inf."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(r).all()):
        return math.nan
    mse = float(np.mean((a - r) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)
