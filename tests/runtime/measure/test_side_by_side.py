"""runtime/measure/side_by_side.py: the series of a (preset, frame) timed in the same rounds.

No latency is asserted against a target (benchmarks hold the numbers): what must hold is that
every planned series is timed, each ONNX Runtime PoM series gets a floor made of its own GEMMs
run once per step call, the floor sits under the frame it bounds, the ratios are those of the
reported times, and a series too slow for ``max_seconds`` is left out with its estimate.
"""

from __future__ import annotations

import time

import pytest

from pomexport.runtime.measure import side_by_side as sbs
from pomexport.runtime.measure.bench import BenchSettings

FAST = {"presets": ("tiny",), "frames": (1,), "steps": 2, "repeats": 1, "warmup": 0}


def test_every_series_is_timed_and_the_ort_floor_is_under_its_frame():
    report = sbs.side_by_side(BenchSettings(backends=("ort",), threads=1, **FAST), rounds=2)
    assert report["schema"] == sbs.SCHEMA and report["settings"]["rounds"] == 2
    (row,) = report["rows"]
    times = row["frame_ms"]
    assert set(times) == {"pom[ort]", "attention[kv_cache]", "attention[recompute]"}
    assert set(row["gemm_floor_ms"]) == {"pom[ort]"}
    # the floor runs the step's GEMMs only: tiny's non-GEMM ops are most of its step
    assert 0 < row["gemm_floor_ms"]["pom[ort]"] < times["pom[ort]"]
    ratios = row["attention_over_pom"]
    for attn in ("attention[kv_cache]", "attention[recompute]"):
        assert ratios[f"{attn}/pom[ort]"] == pytest.approx(times[attn] / times["pom[ort]"], 2e-3)
    assert (
        row["attention_over_pom_gemm_floor"]["attention[kv_cache]/pom[ort]"]
        > ratios["attention[kv_cache]/pom[ort]"]
    )
    assert row["skipped"] == {}


def test_the_floor_runs_the_gemm_chain_once_per_call_of_a_frame(monkeypatch):
    """STEPS denoising calls + the commit: the chain runs steps + 1 times per floor frame;
    the torch backend has no ONNX graph, so no floor."""
    runs = []
    monkeypatch.setattr(sbs.roofline, "artifact_graph", lambda model, precision: precision)
    monkeypatch.setattr(sbs.roofline, "gemm_chain", lambda graph, at: lambda: runs.append(graph))
    settings = BenchSettings(backends=("torch", "ort-int8"), **{**FAST, "steps": 5})
    floors = sbs._floors(object(), settings)
    assert set(floors) == {"pom[ort-int8]"}
    floors["pom[ort-int8]"]()
    assert runs == ["int8"] * 6


def test_a_series_over_max_seconds_is_left_out_with_its_estimate(monkeypatch):
    calls = []
    runners = {
        "attention[kv_cache]": lambda: calls.append("kv"),
        "attention[recompute]": lambda: (calls.append("recompute"), time.sleep(0.05)),
        "pom[torch]": lambda: (calls.append("pom"), time.sleep(0.002)),
    }
    monkeypatch.setattr(sbs, "_frame_runners", lambda preset, frame, settings, models: runners)
    settings = BenchSettings(backends=("torch",), max_seconds=0.1, **FAST)
    floor = {"pom[torch]": lambda: calls.append("floor"), "pom[ort]": lambda: calls.append("x")}
    row = sbs._row("tiny", 1, settings, 3, {}, floor)
    assert set(row["frame_ms"]) == {"attention[kv_cache]", "pom[torch]"}
    assert "> max_seconds 0 s" in row["skipped"]["attention[recompute]"]
    assert calls.count("recompute") == 1  # its first frame only, untimed
    assert calls.count("kv") == 1 + 3 and calls.count("pom") == 1 + 3  # first frame + rounds
    assert list(row["attention_over_pom"]) == ["attention[kv_cache]/pom[torch]"]
    # a floor is timed only beside its own series' frames
    assert (
        calls.count("floor") == 3
        and "x" not in calls
        and set(row["gemm_floor_ms"]) == {"pom[torch]"}
    )


@pytest.mark.parametrize("extra", ["--roofline", "--long 4"])
def test_cli_side_by_side_refuses_another_mode_in_one_line(extra):
    from click.testing import CliRunner

    from pomexport.cli.main import cli

    result = CliRunner().invoke(cli, ["bench", "--side-by-side", *extra.split()])
    assert result.exit_code == 1 and "separate modes: pass one" in result.output
    assert len(result.output.strip().splitlines()) == 1
