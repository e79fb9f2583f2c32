"""Calibrators against closed forms: ranges, percentile, entropy threshold, encodings."""

from __future__ import annotations

import numpy as np
import pytest

from pomexport.calibration.calibrators import (
    ActivationRange,
    TensorStats,
    calibrated_amax,
    clipped_fraction,
    quantize_weight,
    weight_scales,
)
from pomexport.errors import ConfigError


def _stats(*chunks: np.ndarray) -> TensorStats:
    stats = TensorStats()
    for chunk in chunks:
        stats.observe_range(chunk)
    for chunk in chunks:
        stats.observe_histogram(chunk)
    return stats


def test_minmax_is_the_absolute_maximum_over_all_batches():
    stats = _stats(np.array([-3.0, 1.0]), np.array([2.5, -0.5]))
    assert calibrated_amax(stats, "minmax") == 3.0
    assert clipped_fraction(stats, 3.0) == 0.0
    assert (stats.lo, stats.hi) == (-3.0, 2.5)


def test_percentile_clips_the_outliers_only():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, 200_000).astype(np.float32)
    x[:1] = 50.0  # 0.0005 % outliers
    stats = _stats(x)
    amax = calibrated_amax(stats, "percentile")  # 99.999 %: the outlier is beyond it
    assert 0.99 <= amax <= 1.0 + 2 * stats.bin_width
    assert clipped_fraction(stats, amax) == pytest.approx(1 / x.size, abs=2e-6)


def test_entropy_clips_a_heavy_tail_but_keeps_a_uniform_range():
    rng = np.random.default_rng(1)
    gaussian = rng.standard_normal(400_000).astype(np.float32)
    gaussian[0] = 40.0  # one far outlier: min-max would waste most of the 127 levels on it
    amax = calibrated_amax(_stats(gaussian), "entropy")
    # TensorRT-style KL thresholds of a unit Gaussian land at a few sigma.
    assert 2.0 < amax < 8.0
    uniform = rng.uniform(-1.0, 1.0, 400_000).astype(np.float32)
    assert calibrated_amax(_stats(uniform), "entropy") > 0.9


def test_unknown_method_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown calibration method"):
        calibrated_amax(_stats(np.ones(4)), "mse")


def test_uint8_encoding_shares_the_threshold_and_keeps_zero_exact():
    one_sided = ActivationRange(amax=4.0, lo=-0.2, hi=6.0)  # GELU-like, clipped at 4
    scale, zero = one_sided.uint8()
    assert scale == pytest.approx(4.2 / 255)
    assert zero == round(0.2 / scale)
    assert one_sided.int8_scale == pytest.approx(4.0 / 127)
    positive = ActivationRange(amax=2.0, lo=0.5, hi=2.0)  # the range is widened to hold 0
    assert positive.uint8() == (pytest.approx(2.0 / 255), 0)


def test_weights_per_output_channel_round_trip_within_half_a_step():
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((64, 48)).astype(np.float32) * np.linspace(0.01, 3.0, 48)
    scales = weight_scales(weight, axis=1)
    assert scales.shape == (48,)
    np.testing.assert_allclose(scales, np.abs(weight).max(axis=0) / 127, rtol=1e-6)
    q = quantize_weight(weight, scales, axis=1)
    assert q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.all(np.abs(q * scales - weight) <= scales / 2 + 1e-7)
    zero = weight_scales(np.zeros((4, 3), np.float32), axis=0)
    assert np.all(zero > 0)  # an all-zero channel still gets a valid scale
