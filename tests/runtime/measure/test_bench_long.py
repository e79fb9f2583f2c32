"""Long-clip bench mode: real generation, one entry per frame, flatness and RSS summary."""

from __future__ import annotations

import pytest

from pomexport.errors import ConfigError
from pomexport.runtime.measure.bench_long import LongRun, measure_long


def test_long_run_times_every_frame_and_summarises():
    run = LongRun("tiny", "torch", frames=20, steps=1, cfg_scale=1.0, threads=1, window=4)
    result = measure_long(run)
    assert len(result["frame_ms"]) == 20 and min(result["frame_ms"]) > 0
    assert result["window"] == "early = frames 1..4, late = frames 17..20"
    early = sorted(result["frame_ms"][:4])
    assert result["early_median_ms"] == pytest.approx((early[1] + early[2]) / 2, abs=1e-2)
    assert result["latency_ratio"] == pytest.approx(
        result["late_median_ms"] / result["early_median_ms"]
    )
    assert abs(result["rss_growth"]) < 0.5 and result["fps"] > 0


def test_long_run_needs_16_frames():
    with pytest.raises(ConfigError, match="at least 16 frames"):
        LongRun("tiny", "torch", frames=8)
