"""Scales from statistics: activation ranges (min-max, percentile, entropy) and weight scales.

Activations are per-tensor. One calibration gives both encodings of docs/design.md §4:

- TensorRT: symmetric int8, ``scale = amax / 127``, zero point 0;
- ONNX Runtime x86 CPU: asymmetric uint8 over ``[max(min, -amax), min(max, amax)]``
  (widened to include 0), so the same clipping threshold, a finer step when the tensor is
  one-sided (GELU outputs).

Weights are per output channel, symmetric int8: ``scale_c = max|W_c| / 127``.

The entropy calibrator is TensorRT's: a 2048-bin histogram of |x|; for every candidate
threshold (bin 128..2048) the clipped distribution P (outliers folded into the last bin) is
compared with its 128-level quantization Q, and the threshold of least KL(P || Q) wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pomexport.errors import ConfigError
from pomexport.export.artifact.layout import CALIBRATION_METHODS

METHODS = CALIBRATION_METHODS  # the artifact format names them (manifest "quantization")
BINS = 2048
LEVELS = 128  # int8 magnitudes 0..127 (symmetric)
INT8_MAX = 127
PERCENTILE = 99.999  # 99.99 clipped the trained model's GELU tails (v error 4.9 vs 3.2 %)
_TINY = 1e-12  # an all-zero tensor or channel still gets a valid (positive) scale


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    return method


class TensorStats:
    """Running statistics of one activation: pass 1 the range, pass 2 a histogram of |x|."""

    def __init__(self) -> None:
        self.lo, self.hi = np.inf, -np.inf
        self.hist: np.ndarray | None = None
        self.count = 0

    @property
    def absmax(self) -> float:
        return float(max(abs(self.lo), abs(self.hi), _TINY))

    def observe_range(self, x: np.ndarray) -> None:
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    def observe_histogram(self, x: np.ndarray) -> None:
        """Needs the final range (call after every :meth:`observe_range`)."""
        counts, _ = np.histogram(np.abs(x), bins=BINS, range=(0.0, self.absmax))
        self.hist = counts if self.hist is None else self.hist + counts
        self.count += x.size

    @property
    def bin_width(self) -> float:
        return self.absmax / BINS


def amax_minmax(stats: TensorStats) -> float:
    return stats.absmax


def amax_percentile(stats: TensorStats, percentile: float = PERCENTILE) -> float:
    """Smallest threshold keeping ``percentile`` % of the |x| values unclipped."""
    cdf = np.cumsum(stats.hist) / max(stats.hist.sum(), 1)
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return float(min(index + 1, BINS) * stats.bin_width)


def _kl_divergence(hist: np.ndarray, stop: int, levels: int) -> float:
    """KL(P || Q) of the first ``stop`` bins clipped there and quantized to ``levels``."""
    kept = hist[:stop].astype(np.float64)
    p = kept.copy()
    p[-1] += hist[stop:].sum()
    nonzero = kept != 0
    # Q spreads each of the ``levels`` merged bins evenly over its non-empty source bins.
    group = (np.arange(stop) * levels) // stop
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    sums = np.add.reduceat(kept, starts)
    used = np.add.reduceat(nonzero.astype(np.float64), starts)
    q = np.where(nonzero, (sums / np.maximum(used, 1))[group], 0.0)
    p_sum, q_sum = p.sum(), q.sum()
    if p_sum == 0 or q_sum == 0:
        return np.inf
    p, q = p / p_sum, q / q_sum
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    return float(np.sum(p[mask] * np.log(p[mask] / q[mask])))


def amax_entropy(stats: TensorStats, levels: int = LEVELS, coarse: int = 16) -> float:
    """TensorRT's entropy calibration threshold (see the module docstring).

    Every ``coarse``-th candidate first, then every candidate around the best one: the same
    minimum in practice, a tenth of the KL evaluations.
    """
    hist = stats.hist
    if hist is None or hist.sum() == 0:
        return stats.absmax

    def best(candidates: list[int]) -> int:
        divergences = [_kl_divergence(hist, stop, levels) for stop in candidates]
        return candidates[int(np.argmin(divergences))]

    rough = best(list(range(levels, BINS + 1, coarse)))
    fine = best(list(range(max(levels, rough - coarse), min(BINS, rough + coarse) + 1)))
    return float(fine * stats.bin_width)


def calibrated_amax(stats: TensorStats, method: str) -> float:
    """The clipping threshold of ``method`` for one tensor."""
    check_method(method)
    if method == "minmax":
        return amax_minmax(stats)
    if method == "percentile":
        return amax_percentile(stats)
    return amax_entropy(stats)


def clipped_fraction(stats: TensorStats, amax: float) -> float:
    """Fraction of observed values with |x| beyond ``amax`` (read from the histogram)."""
    if stats.hist is None or stats.count == 0:
        return 0.0
    first = int(np.ceil(amax / stats.bin_width - 1e-9))
    return float(stats.hist[first:].sum() / stats.count)


@dataclass(frozen=True)
class ActivationRange:
    """One activation's calibrated range and its two encodings (module docstring)."""

    amax: float
    lo: float
    hi: float

    @property
    def int8_scale(self) -> float:
        return max(self.amax, _TINY) / INT8_MAX

    def uint8(self) -> tuple[float, int]:
        """(scale, zero point) of the asymmetric uint8 encoding."""
        lo = min(max(self.lo, -self.amax), 0.0)
        hi = max(min(self.hi, self.amax), 0.0)
        scale = max(hi - lo, _TINY) / 255.0
        return scale, int(np.clip(round(-lo / scale), 0, 255))


def activation_range(stats: TensorStats, method: str) -> ActivationRange:
    return ActivationRange(calibrated_amax(stats, method), stats.lo, stats.hi)


def weight_scales(weight: np.ndarray, axis: int) -> np.ndarray:
    """Per-channel symmetric scales along ``axis`` (the output channels), fp32."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    amax = np.abs(weight).max(axis=others)
    return (np.maximum(amax, _TINY) / INT8_MAX).astype(np.float32)


def quantize_weight(weight: np.ndarray, scales: np.ndarray, axis: int) -> np.ndarray:
    """int8 weights: round(W / scale_c), saturated to [-127, 127]."""
    shape = [1] * weight.ndim
    shape[axis] = -1
    q = np.round(weight / scales.reshape(shape))
    return np.clip(q, -INT8_MAX, INT8_MAX).astype(np.int8)
