"""runtime/measure/bench_decoder.py (issue 21): ``pomexport bench --decoder ARTIFACT`` reports
the steps' and the decode's time per frame and the decoder's share, each share computed from
its own row (structure only: no timing is asserted)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ConfigError
from pomexport.runtime.measure.bench_decoder import SCHEMA, decoder_share

ROW_KEYS = {"frame", "role", "warmup", "step_ms", "decode_ms", "rgb_frames", "decode_share"}


def _check(report: dict, frames: int, warmup: int, roles: list[str], rgb: list[int]) -> None:
    assert report["schema"] == SCHEMA and report["backend"] == "ort-cpu"
    rows = report["rows"]
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [r["frame"] for r in rows] == list(range(1, frames + warmup + 1))
    assert [r["warmup"] for r in rows] == [True] * warmup + [False] * frames
    assert [r["role"] for r in rows] == roles and [r["rgb_frames"] for r in rows] == rgb
    for r in rows:
        assert r["step_ms"] > 0 and r["decode_ms"] > 0
        assert r["decode_share"] == pytest.approx(r["decode_ms"] / (r["decode_ms"] + r["step_ms"]))
    summary = report["summary"]
    assert summary["frames"] == frames
    share = summary["decode_ms"] / (summary["decode_ms"] + summary["step_ms"])
    assert summary["decode_share"] == pytest.approx(share)
    per_rgb = summary["per_rgb_frame"]
    assert per_rgb["decode_ms"] / per_rgb["step_ms"] == pytest.approx(
        summary["decode_ms"] / summary["step_ms"]
    )


def test_a_wan_stream_reports_its_share(decoders):
    report = decoder_share(decoders.artifact("wan").root, frames=2, steps=2, warmup=1)
    _check(report, 2, 1, ["first", "next", "next"], [1, 4, 4])
    assert report["summary"]["per_rgb_frame"]["step_ms"] == pytest.approx(
        report["summary"]["step_ms"] / 4
    )


def test_the_cli_writes_the_json(decoders, tmp_path):
    root = str(decoders.artifact("kl").root)
    out = tmp_path / "bench.json"
    args = ["bench", "--decoder", root, "--steps", "2", "--repeats", "2", "--warmup", "0"]
    result = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    _check(json.loads(out.read_text()), 2, 0, ["decode", "decode"], [1, 1])


def test_an_artifact_without_a_decoder_is_refused(ort_artifact):
    artifact, _ = ort_artifact
    with pytest.raises(ConfigError, match="has no decoder stage"):
        decoder_share(artifact.root, frames=1, steps=1)
