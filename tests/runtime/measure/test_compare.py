"""The comparison result object, PSNR/uint8 decoding, gates from the manifest, bench plot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pomexport.export.artifact.gates import DEFAULT_GATES, default_gates_entry, gates_for
from pomexport.runtime.measure.compare import (
    Tolerance,
    compare_outputs,
    output_error,
    psnr,
    to_uint8,
)


def test_result_is_truthy_when_every_output_passes():
    ref = {"v": np.linspace(-1, 1, 100), "state_out": np.arange(10.0)}
    close = {"v": ref["v"] + 1e-6, "state_out": ref["state_out"] * (1 + 1e-7)}
    tols = {"v": Tolerance(max_abs=1e-5, rel=1e-5), "state_out": Tolerance(rel=1e-6)}
    result = compare_outputs(close, ref, tols)
    assert result and not result.failures and not result.has_nan
    assert result["v"].max_abs == pytest.approx(1e-6, rel=1e-6)
    assert result["v"].mean_abs == pytest.approx(1e-6, rel=1e-6)
    assert result["state_out"].rel == pytest.approx(1e-7, rel=1e-3)  # max|a-r| / max|r|
    assert result["v"].cosine == pytest.approx(1.0, abs=1e-9)


def test_result_is_falsy_with_the_failing_output_named():
    ref = {"v": np.ones(8), "state_out": np.ones(4)}
    bad = {"v": np.ones(8), "state_out": np.array([1.0, 1.0, 1.0, 1.5])}
    result = compare_outputs(bad, ref, {"state_out": Tolerance(rel=1e-3, cosine_min=0.999)})
    assert not result
    assert bool(result["v"]) and not result["state_out"]
    assert result["state_out"].max_abs == pytest.approx(0.5)
    assert result["state_out"].rel == pytest.approx(0.5)
    assert [f.split(":")[0] for f in result.failures] == ["state_out", "state_out"]


def test_nan_is_reported_as_nan_not_as_a_large_error():
    ref = np.ones(6)
    err = output_error("v", np.array([1, 1, np.nan, 1, np.inf, 1.0]), ref, Tolerance(max_abs=1.0))
    assert not err and err.is_nan and err.nonfinite == 2 and err.ref_nonfinite == 0
    assert math.isnan(err.max_abs) and math.isnan(err.rel) and math.isnan(err.cosine)
    assert "NaN/Inf in the output (2 of 6 values)" in err.failures[0]
    # No tolerance at all still fails on NaN: a NaN is never "within tolerance".
    assert not output_error("v", np.array([np.nan]), np.array([1.0]))
    ref_nan = output_error("v", np.array([1.0]), np.array([np.nan]))
    assert not ref_nan and ref_nan.ref_nonfinite == 1 and ref_nan.nonfinite == 0
    assert "NaN/Inf in the reference" in ref_nan.failures[0]


def test_mismatched_sizes_raise():
    with pytest.raises(ValueError, match="3 values compared with 4"):
        output_error("v", np.zeros(3), np.zeros(4))
    with pytest.raises(KeyError, match="state_out"):
        compare_outputs({"v": np.zeros(1)}, {"v": np.zeros(1), "state_out": np.zeros(1)})


def test_uint8_decoding_and_psnr():
    assert to_uint8(np.array([-1.0, 0.0, 1.0, 1.5, -3.0])).tolist() == [0, 128, 255, 255, 0]
    a = np.zeros((4, 4), np.uint8)
    b = a.copy()
    assert psnr(a, b) == math.inf
    b[0, 0] = 16  # MSE = 256 / 16 = 16
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 16))
    assert math.isnan(psnr(np.array([np.nan]), np.array([0.0])))


def test_gates_come_from_the_manifest_else_defaults():
    manifest = {"precision": "fp16", "gates": default_gates_entry()}
    manifest["gates"]["fp16"]["psnr_min_db"] = 42.0
    gates, source = gates_for(manifest)
    assert source == "manifest" and gates.psnr_min_db == 42.0
    gates, source = gates_for({"precision": "int8"})
    assert gates == DEFAULT_GATES["int8"] and "defaults for int8" in source
    tols = DEFAULT_GATES["fp32"].step_tolerances()
    assert tols["v"].max_abs == 1e-4 and tols["state_out"].rel == 1e-5
    # Looser as the precision drops.
    assert DEFAULT_GATES["fp32"].v_rel < DEFAULT_GATES["fp16"].v_rel < DEFAULT_GATES["int8"].v_rel


def test_bench_plot_has_one_line_per_series_and_labelled_axes(tmp_path):
    from PIL import Image

    from pomexport.runtime.measure.plots import bench_figure, plot_bench

    rows = [
        {"preset": "tiny", "series": s, "frame": n, "frame_ms": ms * n}
        for s, ms in (("pom[torch]", 1.0), ("pom[ort]", 0.8), ("attention[kv_cache]", 1.5))
        for n in (1, 16, 64)
    ]
    report = {"rows": rows + [{"preset": "tiny", "series": "pom[torch]", "frame": 256}]}
    fig = bench_figure(report)
    (ax,) = fig.axes
    assert ax.get_xlabel().startswith("frame index") and "latency" in ax.get_ylabel()
    assert [line.get_label() for line in ax.get_lines()] == [
        "pom[torch]",
        "pom[ort]",
        "attention[kv_cache]",
    ]
    path = plot_bench(report, tmp_path / "bench.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
