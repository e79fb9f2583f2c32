"""Long-clip mode of ``pomexport bench`` (``--long N``): real generation of N frames.

Where the regular rows build frame n's context synthetically, this mode generates a clip
frame by frame with the :class:`VideoGenerator` — the loop users run — and records every
frame's wall time, CPU time and the process RSS after it. PoM's state has a fixed size, so
per-frame latency and memory must stay flat however long the clip:

- ``latency_ratio``: median latency of the last ``window`` frames (around frame N) over the
  median of the first ``window`` frames (around frame 1); ``latency_ratio_frame1`` uses
  frame 1 alone (one sample: noisier on a shared machine);
- ``rss_growth``: (RSS after frame N - RSS after frame 16) / RSS after frame 16;
- ``fps``: frames per second of the median frame (one stream, CFG as given).

Each backend runs in its own spawned process (honest RSS), one untimed warm-up frame first
on a separate generator, so frame 1 of the measured clip is not the first call.
"""

from __future__ import annotations

import logging
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from pomexport.errors import ConfigError
from pomexport.runtime.measure import rss as _rss

logger = logging.getLogger(__name__)

RSS_FROM_FRAME = 16  # memory growth is measured from here (allocator warm-up before)


@dataclass(frozen=True)
class LongRun:
    """One long clip: ``model`` (bundled name or preset) on ``backend`` (bench.BACKENDS)."""

    model: str
    backend: str
    frames: int
    steps: int = 8
    cfg_scale: float = 2.0
    threads: int = 0
    seed: int = 0
    window: int = 25

    def __post_init__(self) -> None:
        if self.frames < RSS_FROM_FRAME:
            raise ConfigError(f"--long needs at least {RSS_FROM_FRAME} frames, got {self.frames}")


def default_model() -> str:
    """The bundled model when its weights are installed, else the ``tiny`` preset."""
    from pomexport.models.registry import DEFAULT_MODEL, bundled_path

    return DEFAULT_MODEL if bundled_path(DEFAULT_MODEL).is_file() else "tiny"


def _generator(run: LongRun):
    import torch

    from pomexport.models.registry import load_model
    from pomexport.runtime.generator import VideoGenerator
    from pomexport.runtime.measure.bench import BACKENDS

    if run.threads:
        torch.set_num_threads(run.threads)
    backend = BACKENDS[run.backend](load_model(run.model, seed=run.seed))

    def make() -> VideoGenerator:
        gen = VideoGenerator(backend, slots=1, steps=run.steps, cfg_scale=run.cfg_scale)
        gen.start(0, label=1, seed=run.seed)
        return gen

    return backend, make


def measure_long(run: LongRun) -> dict:
    """Generate ``run.frames`` frames in this process; per-frame time and RSS."""
    import torch

    backend, make = _generator(run)
    with torch.inference_mode():
        for _ in make().stream(1):  # warm-up: first-call costs, lazy imports, bindings
            pass
        gen, wall, cpu, rss = make(), [], [], []
        start, start_cpu = time.perf_counter(), time.process_time()
        for _frame in gen.stream(run.frames):
            now, now_cpu = time.perf_counter(), time.process_time()
            wall.append(now - start)
            cpu.append(now_cpu - start_cpu)
            rss.append(_rss.current_rss())
            start, start_cpu = time.perf_counter(), time.process_time()
    return _summary(run, backend, wall, cpu, rss)


def _ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values)


def _summary(run: LongRun, backend, wall: list, cpu: list, rss: list) -> dict:
    import torch

    w, n = min(run.window, len(wall) // 4), len(wall)
    early, late = _ms(wall[:w]), _ms(wall[-w:])
    rss16 = rss[RSS_FROM_FRAME - 1]
    return {
        **asdict(run),
        "series": f"pom[{run.backend}]",
        "backend_name": backend.name,
        "threads_used": torch.get_num_threads(),
        "frame1_ms": 1000.0 * wall[0],
        "early_median_ms": early,
        "late_median_ms": late,
        "latency_ratio": late / early,
        "latency_ratio_frame1": late / (1000.0 * wall[0]),
        "cpu_ratio": _ms(cpu[-w:]) / _ms(cpu[:w]),
        "median_frame_ms": _ms(wall),
        "fps": 1000.0 / _ms(wall),
        "rss_mib_frame16": rss16 / _rss.MIB,
        f"rss_mib_frame{n}": rss[-1] / _rss.MIB,
        "rss_growth": (rss[-1] - rss16) / rss16,
        "frame_ms": [round(1000.0 * s, 3) for s in wall],
        "window": f"early = frames 1..{w}, late = frames {n - w + 1}..{n}",
    }


def run_long(runs: list[LongRun], progress=None) -> list[dict]:
    """Each run in a fresh spawned process; a dead worker becomes an ``error`` entry."""
    from concurrent.futures.process import BrokenProcessPool

    progress = progress or logger.info
    results = []
    for run in runs:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                result = pool.submit(measure_long, run).result()
            except BrokenProcessPool as e:
                result = {**asdict(run), "error": f"worker died: {e}"}
        results.append(result)
        if "error" in result:
            progress(f"long {run.model} {run.backend}: {result['error']}")
        else:
            growth = 100 * result["rss_growth"]
            progress(
                f"long {run.model} {run.backend}: {result['fps']:.1f} frames/s, latency "
                f"ratio {result['latency_ratio']:.3f}, RSS growth {growth:.2f} %"
            )
    return results


def long_report(
    backends: tuple[str, ...],
    frames: int,
    steps: int = 8,
    threads: int = 0,
    model: str | None = None,
    cfg_scale: float = 2.0,
    progress=None,
) -> dict:
    """The long-clip report (JSON-able): one entry per backend, same model and settings."""
    import os

    from pomexport.runtime.measure.bench import BACKENDS, SCHEMA

    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ConfigError(f"unknown backend {unknown[0]!r}; known: {', '.join(BACKENDS)}")
    model = model or default_model()
    runs = [LongRun(model, b, frames, steps, cfg_scale, threads) for b in backends]
    started, machine = time.perf_counter(), _rss.machine_info()
    results = run_long(runs, progress)
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "mode": "long",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "method": __doc__,
        "long": results,
        "elapsed_s": time.perf_counter() - started,
    }
