"""``pomexport bench --side-by-side``: every series of a preset at frame n, in the same rounds.

The bench's rows run one after the other, each in a process of its own for an honest peak RSS,
so on a shared machine a burst of load moves one row, and an attention/PoM ratio with it, by
5 % or more. Here the series of one (preset, frame) — PoM on each backend, attention with its
KV cache and recomputing — are built in one process and timed in the same ``rounds``: a round
runs every series one after the other (``warmup`` untimed frames, then the median of
``repeats``), and each series keeps its best round. There are no memory columns (the rows
have them).

Each PoM series on ONNX Runtime also gets its **GEMM floor**: the GEMM nodes of its own
optimized step graph back to back (:func:`roofline.gemm_chain`, weights streaming from memory
as in the step), run as many times as a frame calls the step (``steps`` + the commit), timed in
the same rounds: the frame with every other op fused away, which no graph rewrite goes under.
An attention/PoM ratio under 1 against the floor is out of reach for that backend.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone

import torch

from pomexport.errors import ConfigError
from pomexport.models.attention_baseline import random_attention_model
from pomexport.models.registry import random_model
from pomexport.runtime.measure import bench_cases as cases
from pomexport.runtime.measure import roofline
from pomexport.runtime.measure.bench import BACKENDS, BenchSettings, plan
from pomexport.runtime.measure.rss import machine_info

SCHEMA = "pomexport.side_by_side/1"
# PoM backends whose step graph has a GEMM floor: the precision of their ONNX Runtime graph
ORT_PRECISION = {"ort": "fp32", "ort-fp16": "fp16", "ort-int8": "int8"}
METHOD = {
    "rounds": "every series of a (preset, frame) is built in one process; each round runs "
    "them one after the other, each `warmup` untimed frames then the median of `repeats` "
    "frames; each keeps its best round",
    "frame_ms": "one whole frame: `steps` denoising calls + the commit (PoM, KV cache); "
    "recompute has no commit. Context built at its size with random values, as the rows do",
    "gemm_floor_ms": "PoM on ONNX Runtime: its optimized step graph's GEMM nodes back to back "
    "(weights from memory), `steps` + 1 times: the frame with every other op fused away",
    "skipped": "a series whose first untimed frame, times the frames all rounds run, exceeds "
    "max_seconds is left out with the estimate",
}

Progress = Callable[[str], None]


def _models(preset: str, settings: BenchSettings) -> dict[str, object]:
    """{"pom": PoMDiT, "attention": its attention twin (with the baseline)}: built once per
    preset and shared by every series, frame and floor (the runners only read them)."""
    models = {"pom": random_model(preset, settings.seed)}
    if settings.baseline:
        models["attention"] = random_attention_model(preset, settings.seed)
    return models


def _frame_runners(
    preset: str, frame: int, settings: BenchSettings, models: dict
) -> dict[str, Callable]:
    """{series: run one frame} for every series :func:`bench.plan` has at ``preset`` and
    ``frame``, on the preset's ``models`` (:func:`_models`)."""
    runners: dict[str, Callable] = {}
    for case in (c for series in plan(settings) for c in series):
        if case.preset != preset or case.frame != frame:
            continue
        torch.manual_seed(case.seed)
        if case.model == "pom":
            prepared = cases.prepare_pom(case, models["pom"], BACKENDS[case.backend])
        else:
            prepared = cases.prepare_attention(case, models["attention"])
        runners[case.series] = lambda run=prepared.run_frame: run([])
    return runners


def _floors(model, settings: BenchSettings) -> dict[str, Callable]:
    """{series: run the GEMM floor of one frame} for the PoM series of ``model`` on ONNX
    Runtime."""
    calls = settings.steps + 1
    at = roofline.RooflineSettings(threads=torch.get_num_threads())
    floors = {}
    for backend in (b for b in settings.backends if b in ORT_PRECISION):
        chain = roofline.gemm_chain(roofline.artifact_graph(model, ORT_PRECISION[backend]), at)
        if chain is not None:
            floors[f"pom[{backend}]"] = lambda run=chain: [run() for _ in range(calls)]
    return floors


def _affordable(runs: dict, settings: BenchSettings, rounds: int) -> tuple[dict, dict]:
    """Runs whose first (untimed) frame, times the frames of all rounds, fits max_seconds;
    and {series: reason} for the others."""
    kept, skipped = {}, {}
    for name, run in runs.items():
        start = time.perf_counter()
        run()
        estimate = (time.perf_counter() - start) * rounds * (settings.warmup + settings.repeats)
        if estimate > settings.max_seconds:
            skipped[name] = f"estimated {estimate:.0f} s > max_seconds {settings.max_seconds:.0f} s"
        else:
            kept[name] = run
    return kept, skipped


def _ratios(times: dict[str, float], pom: dict[str, float]) -> dict[str, float]:
    return {
        f"{attn}/{name}": round(times[attn] / ms, 3)
        for attn in times
        if attn.startswith("attention")
        for name, ms in pom.items()
        if ms
    }


def _row(
    preset: str, frame: int, settings: BenchSettings, rounds: int, models: dict, floors: dict
) -> dict:
    """The row of ``preset`` at ``frame``: its ``models`` (:func:`_models`) and ``floors``
    (:func:`_floors`)."""
    runners = _frame_runners(preset, frame, settings, models)
    runs, skipped = _affordable(runners, settings, rounds)
    floors = {("floor", name): run for name, run in floors.items() if name in runs}
    at = roofline.RooflineSettings(repeats=settings.repeats, warmup=settings.warmup, rounds=rounds)
    best = roofline.best_of_rounds({**runs, **floors}, at)
    frame_ms = {name: round(best[name], 3) for name in runs}
    floor_ms = {name: round(best[("floor", name)], 3) for _, name in floors}
    pom = {name: ms for name, ms in frame_ms.items() if name.startswith("pom")}
    return {
        "preset": preset,
        "frame": frame,
        "steps": settings.steps,
        "frame_ms": frame_ms,
        "gemm_floor_ms": floor_ms,
        "attention_over_pom": _ratios(frame_ms, pom),
        "attention_over_pom_gemm_floor": _ratios(frame_ms, floor_ms),
        "skipped": skipped,
    }


def _settings(settings: BenchSettings) -> dict:
    """The settings that shape these rows (no isolation: one process by design)."""
    return {k: v for k, v in asdict(settings).items() if k not in ("isolation", "min_seconds")}


def side_by_side(settings: BenchSettings, rounds: int = 5, progress: Progress | None = None):
    """One row per (preset, frame) of ``settings``: each series' frame time and each ONNX
    Runtime PoM series' GEMM floor, all from the same ``rounds`` (module docstring), and the
    attention/PoM ratios; as one JSON-able report."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    cases.load_lazy_imports()
    rows = []
    with torch.inference_mode():
        for preset in settings.presets:
            models = _models(preset, settings)
            floors = _floors(models["pom"], settings)  # the same at every frame: flat cost
            for frame in sorted(set(settings.frames)):
                if progress is not None:
                    progress(f"{preset} frame {frame}: every series in {rounds} rounds")
                rows.append(_row(preset, frame, settings, rounds, models, floors))
    machine = machine_info()
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {**_settings(settings), "rounds": rounds},
        "method": METHOD,
        "rows": rows,
    }
