"""``pomexport bench``: PoM-DiT's per-frame latency and memory vs a softmax-attention DiT.

For each preset, three kinds of rows, side by side in one run (issue 2's benchmark):

- ``pom[<backend>]``: PoM-DiT through a runtime ``Backend`` (``torch`` today; more backends
  register in :data:`BACKENDS`), its fixed-size state at frame n;
- ``attention[kv_cache]``: the same-sized DiT with block-causal softmax attention and a KV
  cache (:mod:`pomexport.models.attention_baseline`);
- ``attention[recompute]``: the same without a cache, the clip so far re-run every step.

Each row is one (preset, series, frame n): the median latency of one denoising step and of a
whole frame (``steps`` denoising calls + the commit), the bytes of state/cache held, and the
peak RSS. Frame n's context (``n - 1`` committed frames) is built directly at its size from
random values (see each row's ``method``) instead of generating n - 1 frames first.

Memory is measured honestly per row: by default every row runs in a fresh process
(``multiprocessing`` spawn), so ``peak_rss_mib`` is that configuration's own peak;
``isolation="none"`` runs in this process and resets the kernel's peak counter before each
row (faster, for tests; allocator caches from earlier rows can inflate it).

A row whose estimated run time (extrapolated from the same series at a smaller frame) is over
``max_seconds`` is not run; it says ``"skipped": "<reason>"`` instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from pomexport.errors import ConfigError
from pomexport.models.presets import get_preset
from pomexport.runtime.measure import rss as _rss
from pomexport.runtime.measure.bench_cases import MODES, Case, call_flops, measure

logger = logging.getLogger(__name__)

SCHEMA = "pomexport.bench/1"
ISOLATIONS = ("process", "none")


def _torch_backend(model):
    from pomexport.runtime.torch_backend import TorchBackend

    return TorchBackend(model, "cpu")


def _ort_backend(model):
    from pomexport.runtime.measure.bench_ort import ort_cpu

    return ort_cpu(model, "fp32")


def _ort_fp16_backend(model):
    from pomexport.runtime.measure.bench_ort import ort_cpu

    return ort_cpu(model, "fp16")


def _ort_int8_backend(model):
    from pomexport.runtime.measure.bench_int8 import ort_cpu_int8

    return ort_cpu_int8(model)


# Backend name -> factory(model: PoMDiT) -> a runtime Backend. Spawned workers re-import this
# module, so a backend is registered by adding it here (not at run time). The ONNX Runtime
# rows (CPU EP) export the model once per (weights, precision) into runtime/bench_ort's cache.
BACKENDS: dict[str, Callable] = {
    "torch": _torch_backend,
    "ort": _ort_backend,
    "ort-fp16": _ort_fp16_backend,
    "ort-int8": _ort_int8_backend,  # calibrated once per weights (runtime/measure/bench_int8.py)
}


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. ``frames`` count from 1 (frame n follows n - 1 committed frames)."""

    presets: tuple[str, ...] = ("tiny", "S/4")
    frames: tuple[int, ...] = (1, 16, 64, 256)
    backends: tuple[str, ...] = ("torch",)
    steps: int = 8
    repeats: int = 3
    warmup: int = 1
    max_seconds: float = 120.0
    isolation: str = "process"
    baseline: bool = True
    seed: int = 0
    threads: int = 0  # torch intra-op threads in every row; 0: torch's default
    min_seconds: float = 2.0  # cheap rows repeat until this much was timed (a steadier median)

    def __post_init__(self) -> None:
        for preset in self.presets:
            get_preset(preset)  # ConfigError for an unknown name
        for backend in self.backends:
            if backend not in BACKENDS:
                raise ConfigError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if not self.frames or min(self.frames) < 1:
            raise ConfigError(f"frames must be >= 1, got {list(self.frames)}")
        if self.steps < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError("steps and repeats must be >= 1, warmup >= 0")
        if not self.max_seconds > 0:
            raise ConfigError(f"max_seconds must be > 0, got {self.max_seconds}")
        if self.min_seconds < 0:
            raise ConfigError(f"min_seconds must be >= 0, got {self.min_seconds}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.isolation not in ISOLATIONS:
            raise ConfigError(f"isolation must be one of {ISOLATIONS}, got {self.isolation!r}")


def plan(settings: BenchSettings) -> list[list[Case]]:
    """The cases to run, grouped by series, each series in increasing frame order."""
    frames = sorted(set(settings.frames))
    series = []
    for preset in settings.presets:
        kinds = [("pom", "state", backend) for backend in settings.backends]
        if settings.baseline:
            kinds += [("attention", mode, "torch") for mode in MODES["attention"]]
        for model, mode, backend in kinds:
            run = (
                settings.steps,
                settings.repeats,
                settings.warmup,
                settings.seed,
                settings.threads,
                settings.min_seconds,
            )
            series.append([Case(preset, model, mode, backend, n, *run) for n in frames])
    return series


def estimate_seconds(case: Case, done: list[dict]) -> float | None:
    """Estimated run time of ``case`` from the measured rows of its series (None: unknown).

    The last measured frame's latency, scaled by the ratio of the model's FLOPs per call
    (:func:`call_flops`: linear layers grow with the tokens run, attention with tokens times
    context), times the frames the case runs (warm-up + repeats).
    """
    measured = [r for r in done if "frame_ms" in r]
    if not measured:
        return None
    last = measured[-1]
    cfg = get_preset(case.preset)
    scale = call_flops(cfg, case.mode, case.frame) / call_flops(cfg, case.mode, last["frame"])
    frame_s = last["frame_ms"] / 1000.0 * scale
    return frame_s * case.warmup + max(frame_s * case.repeats, case.min_seconds)


def _skipped(case: Case, estimate: float, settings: BenchSettings) -> dict:
    return {
        **asdict(case),
        "series": case.series,
        "skipped": f"estimated {estimate:.0f} s > max_seconds {settings.max_seconds:.0f} s",
        "estimated_seconds": estimate,
    }


def _run_isolated(case: Case) -> dict:
    """Worker entry point: one case in a fresh process (picklable by module path)."""
    return measure(case, BACKENDS.get(case.backend))


def _run_case(case: Case, settings: BenchSettings) -> dict:
    if settings.isolation == "none":
        return measure(case, BACKENDS.get(case.backend), reset_peak=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            return pool.submit(_run_isolated, case).result()
        except BrokenProcessPool as e:  # killed, e.g. by the out-of-memory killer
            logger.warning("%s %s frame %d: worker died", case.preset, case.series, case.frame)
            return {**asdict(case), "series": case.series, "error": f"worker died: {e}"}


Progress = Callable[[str], None]


def _run_series(cases: list[Case], settings: BenchSettings, progress: Progress) -> list[dict]:
    rows: list[dict] = []
    for case in cases:
        estimate = estimate_seconds(case, rows)
        where = f"{case.preset} {case.series} frame {case.frame}"
        if estimate is not None and estimate > settings.max_seconds:
            rows.append(_skipped(case, estimate, settings))
            progress(f"{where}: skipped, {rows[-1]['skipped']}")
            continue
        row = _run_case(case, settings)
        rows.append(row)
        done = f"{row['frame_ms']:.1f} ms/frame" if "frame_ms" in row else row["error"]
        progress(f"{where}: {done}")
    return rows


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _series_summary(rows: list[dict]) -> dict:
    measured = [r for r in rows if "frame_ms" in r]
    out: dict = {"not_measured_frames": [r["frame"] for r in rows if "frame_ms" not in r]}
    keys = ("frame_ms", "frame_ms_min", "frame_cpu_ms", "step_ms", "held_bytes", "peak_rss_mib")
    for key in keys:
        out[key] = {str(r["frame"]): r[key] for r in measured}
    if len(measured) >= 2:
        first, last = measured[0], measured[-1]
        span = f"{last['frame']}/{first['frame']}"
        for key, name in (
            ("frame_ms", "latency"),
            ("frame_ms_min", "latency_min"),
            ("frame_cpu_ms", "cpu_time"),
            ("held_bytes", "held_bytes"),
            ("peak_rss_mib", "peak_rss"),
        ):
            out[f"{name}_ratio"] = {span: _ratio(last[key], first[key])}
    return out


def summarize(rows: list[dict]) -> dict:
    """Per preset: each series' curve and last/first ratios, and attention/PoM per frame."""
    summary: dict = {}
    for preset in dict.fromkeys(r["preset"] for r in rows):
        mine = [r for r in rows if r["preset"] == preset]
        names = list(dict.fromkeys(r["series"] for r in mine))
        series = {s: _series_summary([r for r in mine if r["series"] == s]) for s in names}
        versus = {}
        for pom in (s for s in names if s.startswith("pom")):
            for attn in (s for s in names if s.startswith("attention")):
                pom_ms, attn_ms = series[pom]["frame_ms"], series[attn]["frame_ms"]
                versus[f"{attn}/{pom}"] = {
                    n: _ratio(attn_ms[n], pom_ms[n]) for n in pom_ms if n in attn_ms
                }
        summary[preset] = {"series": series, "frame_latency_attention_over_pom": versus}
    return summary


METHOD = {
    "frame_numbering": "frame n (1-based) is generated after n - 1 committed frames "
    "(frame_index n - 1); batch of one stream; fp32; CPU",
    "frame_latency": "median over the timed frames (`repeats`, more while less than "
    "`min_seconds` was timed; after `warmup` frames) of one whole frame: `steps` "
    "denoising calls + 1 commit call (PoM, KV cache); full recompute has no commit call "
    "(the clean latent is appended to the clip). frame_ms_min: the fastest repeat, less "
    "sensitive to other processes on a shared machine; `latency_min_ratio` uses it. "
    "frame_cpu_ms: median CPU time of the process (all threads) per frame, which other "
    "processes disturb less than wall time (threads spin-waiting still count); "
    "`cpu_time_ratio` uses it",
    "step_latency": "median of the denoising calls of all repeats",
    "context": "frame n's context is built directly at its size with random values "
    "(state / KV cache / clean clip of n - 1 frames), not by generating n - 1 frames; "
    "latency and memory depend on the sizes, not the values (see each row's `method`)",
    "memory": "held_bytes: the state buffers / KV cache / clip latents held at frame n. "
    "peak_rss_mib: peak resident set size of the process that ran the row; with isolation "
    "'process' each row runs in a fresh spawned process (includes the interpreter, torch and "
    "the model: compare rows, not absolute values); with 'none' the kernel's peak counter is "
    "reset before each row in this process. peak_rss_over_model_mib: peak minus the RSS "
    "right after the model was built (context + activations)",
    "budget": "a row whose run time, extrapolated from the same series at a smaller frame "
    "by the ratio of `gflop_per_call`, exceeds max_seconds is skipped with a reason",
    "gflop_per_call": "approximate model FLOPs of one step call (2 x multiply-adds of the "
    "linear layers, PolyMixer projections and attention scores; embeddings left out)",
}


def run_bench(settings: BenchSettings, progress: Progress | None = None) -> dict:
    """Run every planned row (series by series) and return the report (JSON-able dict).

    ``progress`` receives one line per row as it finishes (default: the module's logger).
    """
    progress = progress or logger.info
    started = time.perf_counter()
    machine = _rss.machine_info()
    rows: list[dict] = []
    for cases in plan(settings):
        rows.extend(_run_series(cases, settings, progress))
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": asdict(settings),
        "method": METHOD,
        "rows": rows,
        "summary": summarize(rows),
        "elapsed_s": time.perf_counter() - started,
    }
