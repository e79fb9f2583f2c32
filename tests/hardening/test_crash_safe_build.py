"""Crash-safe and concurrent builds: SIGKILL at random points leaves the previous artifact
or none, never a half one; two builds racing into one directory leave one valid artifact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import hardening_corpus as corpus
import onnx

from pomexport.errors import ArtifactError
from pomexport.export.artifact import PORTABLE, load_artifact

WORKER = Path(__file__).parent / "build_worker.py"
FLOATS = 1 << 20  # 4 MiB of weights: writes take long enough to be interrupted
NONE = ("missing (not a pomexport artifact)", "not an artifact directory")


def _start(out: Path, name: str, loops: int, intervals: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, str(WORKER), str(out), name, str(loops), str(FLOATS)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*args, *([str(intervals)] if intervals else [])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def _check_whole_or_none(out: Path, names: set[str]) -> str | None:
    """The artifact at ``out`` is complete (hashes, external data) or absent; its name."""
    try:
        art = load_artifact(out)
    except ArtifactError as e:
        assert any(reason in str(e) for reason in NONE), f"half an artifact: {e}"
        return None
    onnx.load(str(art.path(PORTABLE)))  # the external weights are all there
    assert art.model_name in names
    return art.model_name


def _leftovers(parent: Path, out: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_sigkill_at_random_points(tmp_path):
    out = tmp_path / "out"
    corpus.write_artifact(out, name="old")
    rng = random.Random(1234)
    seen, names = [], {"old"}
    for kill in range(4):  # each worker start imports torch: seconds on a loaded CI box
        proc = _start(out, f"gen{kill}", loops=100)
        names |= {f"gen{kill}-{i}" for i in range(100)}
        time.sleep(rng.uniform(0.2, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seen.append(_check_whole_or_none(out, names))
    assert any(s not in (None, "old") for s in seen), f"no kill landed after a build: {seen}"
    # A build after the crashes succeeds (the kernel released the killed holders' locks)
    # and clears what the killed ones left beside out.
    proc = _start(out, "final", loops=1)
    assert proc.wait() == 0, proc.stderr.read()
    assert load_artifact(out).model_name == "final-0"
    assert _leftovers(tmp_path, out) == []


def test_ten_sigkilled_builds_leave_only_the_artifact(tmp_path):
    """Issue 22: ten builds into one --out SIGKILLed at random points (staging folders, the
    exporter's nested staging, lock files, temp files all in flight); the next build leaves
    the parent folder holding the artifact and nothing else."""
    out = tmp_path / "out"
    corpus.write_artifact(out, name="old")
    args = [sys.executable, str(WORKER), str(out), "gen", "serve", str(FLOATS)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env,
    )  # fmt: skip
    assert server.stdout.readline().strip() == "ready", server.stderr.read()
    rng = random.Random(22)
    names = {"old"} | {f"gen-{k}-{i}" for k in range(11) for i in range(100)}

    def run(tag: int, loops: int, kill_after: float | None) -> int:
        server.stdin.write(f"{loops} {tag}\n")
        server.stdin.flush()
        pid = int(server.stdout.readline())
        if kill_after is not None:
            time.sleep(kill_after)
            os.kill(pid, signal.SIGKILL)
        return int(server.stdout.readline())

    try:
        left = set()  # what the kills left for the next build to clear (proves they landed)
        for kill in range(10):
            run(kill, 100, rng.uniform(0.05, 0.8))
            _check_whole_or_none(out, names)
            left |= {p.name for p in tmp_path.iterdir() if p.name != "out"}
        assert any(".building-" in n for n in left) and f".{out.name}.lock" in left, left
        assert run(10, 1, None) == 0  # the next build cleans up after the killed ones
    finally:
        server.stdin.close()
        server.wait()
    assert load_artifact(out).model_name == "gen-10-0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_two_builds_racing_leave_one_artifact(tmp_path):
    out, intervals = tmp_path / "out", tmp_path / "intervals.txt"
    procs = [_start(out, name, loops=3, intervals=intervals) for name in ("a", "b")]
    for proc in procs:
        assert proc.wait() == 0, proc.stderr.read()
    assert load_artifact(out).model_name in {"a-2", "b-2"}
    assert _leftovers(tmp_path, out) == []  # no staging folder, no lock file
    spans = sorted(
        tuple(map(float, line.split()[:2])) for line in intervals.read_text().splitlines()
    )
    assert len(spans) == 6
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, "two builds wrote at the same time: the lock did not serialize them"
