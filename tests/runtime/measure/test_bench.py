"""``pomexport bench``: the JSON schema, positive measurements, consistent ratios, the budget."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ConfigError
from pomexport.models import get_preset
from pomexport.runtime.measure.bench import SCHEMA, BenchSettings, estimate_seconds, run_bench
from pomexport.runtime.measure.bench_cases import Case, call_flops

REL = 1e-9  # ratios are recomputed from the same floats: only rounding differs


@pytest.fixture(scope="module")
def report() -> dict:
    settings = BenchSettings(
        presets=("tiny",),
        frames=(1, 2),
        steps=1,
        repeats=1,
        warmup=1,
        isolation="none",
        min_seconds=0.0,
    )
    return run_bench(settings)


def test_report_schema(report):
    assert report["schema"] == SCHEMA
    assert {"cpu", "torch", "torch_threads", "usable_cores"} <= set(report["machine"])
    assert {"context", "memory", "frame_latency"} <= set(report["method"])
    series = [(r["series"], r["frame"]) for r in report["rows"]]
    assert series == [
        (s, n)
        for s in ("pom[torch]", "attention[kv_cache]", "attention[recompute]")
        for n in (1, 2)
    ]


def test_rows_are_positive_and_count_the_calls(report):
    calls = {"pom[torch]": 2, "attention[kv_cache]": 2, "attention[recompute]": 1}
    for row in report["rows"]:
        assert "skipped" not in row and "error" not in row
        assert row["frame_ms"] > 0 and row["step_ms"] > 0
        assert row["held_bytes"] > 0 and row["peak_rss_mib"] > 0
        assert row["calls_per_frame"] == calls[row["series"]]
        assert row["frame_ms"] == pytest.approx(row["frame_ms_runs"][0], abs=1e-3)
        assert row["frame_index"] == row["frame"] - 1 and row["method"]


def test_summary_ratios_match_rows(report):
    rows = {(r["series"], r["frame"]): r for r in report["rows"]}
    summary = report["summary"]["tiny"]
    for name, curve in summary["series"].items():
        expected = rows[name, 2]["frame_ms"] / rows[name, 1]["frame_ms"]
        assert curve["latency_ratio"]["2/1"] == pytest.approx(expected, rel=REL)
    held = {name: c["held_bytes_ratio"]["2/1"] for name, c in summary["series"].items()}
    # PoM's state has a fixed size; the KV cache and the clip hold one frame more each frame.
    assert held == {"pom[torch]": 1.0, "attention[kv_cache]": 2.0, "attention[recompute]": 2.0}
    versus = summary["frame_latency_attention_over_pom"]["attention[kv_cache]/pom[torch]"]
    for n in (1, 2):
        expected = rows["attention[kv_cache]", n]["frame_ms"] / rows["pom[torch]", n]["frame_ms"]
        assert versus[str(n)] == pytest.approx(expected, rel=REL)


def test_estimate_extrapolates_by_flops():
    case = Case("tiny", "attention", "recompute", "torch", 16, 1, 2, 1)
    assert estimate_seconds(case, []) is None
    cfg = get_preset("tiny")
    rows = [{"frame": 1, "frame_ms": 10.0}, {"frame": 4, "frame_ms": 50.0}]
    scale = call_flops(cfg, "recompute", 16) / call_flops(cfg, "recompute", 4)
    assert estimate_seconds(case, rows) == pytest.approx(0.050 * scale * 3)  # warmup + repeats
    # recompute grows faster than linearly (attention), the KV-cache step slower, PoM not at all
    assert scale > 4.0
    assert call_flops(cfg, "kv_cache", 16) / call_flops(cfg, "kv_cache", 4) < 4.0
    assert call_flops(cfg, "state", 256) == call_flops(cfg, "state", 1)


def test_cli_budget_skip_and_file(tmp_path):
    out = tmp_path / "bench.json"
    args = "bench --presets tiny --frames 1,2 --steps 1 --repeats 1 --warmup 0 "
    args += f"--isolation none --no-baseline --max-seconds 1e-6 --min-seconds 0 --out {out}"
    result = CliRunner().invoke(cli, args.split())
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert "frame_ms" in rows[0] and "skipped" in rows[1] and "max_seconds" in rows[1]["skipped"]


def test_cli_bad_input_is_one_line():
    result = CliRunner().invoke(cli, ["bench", "--presets", "nope"])
    assert result.exit_code == 1 and "unknown preset 'nope'" in result.output
    with pytest.raises(ConfigError, match="frames"):
        BenchSettings(frames=(0,))


def test_process_isolation_runs_a_row_in_a_fresh_process():
    settings = BenchSettings(
        presets=("tiny",),
        frames=(1,),
        steps=1,
        repeats=1,
        warmup=0,
        baseline=False,
        min_seconds=0.0,
    )
    (row,) = run_bench(settings)["rows"]
    assert row["frame_ms"] > 0 and row["peak_rss_mib"] > 0 and row["peak_rss_reset"] is False


def test_cheap_rows_repeat_until_min_seconds():
    settings = BenchSettings(
        presets=("tiny",),
        frames=(1,),
        steps=1,
        repeats=1,
        warmup=0,
        baseline=False,
        isolation="none",
        min_seconds=0.3,
    )
    (row,) = run_bench(settings)["rows"]
    assert row["frames_timed"] == len(row["frame_ms_runs"]) > 1
    assert row["wall_s"] >= 0.3  # the loop's clock also counts the untimed Euler updates
