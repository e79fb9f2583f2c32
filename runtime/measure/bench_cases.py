"""One benchmark configuration, measured in the current process.

A configuration is (preset, model, mode, backend, frame n). It builds the model, then the
context frame n sees — ``n - 1`` committed frames — directly at its final size with random
values (latency and memory depend on the sizes, not the values), then times whole frames:
``steps`` denoising calls plus the commit, as the generation loop of docs/design.md §3 runs them.

- ``pom`` / ``state``: a backend's ``step`` on the fixed-size recurrent state.
- ``attention`` / ``kv_cache``: keys/values of the committed frames, preallocated.
- ``attention`` / ``recompute``: the committed clean frames re-run with the current one at
  every step; its commit is free (the clean latent is appended), so it costs ``steps`` calls.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from pomexport.models.attention_baseline import random_attention_model
from pomexport.models.config import PoMDiTConfig
from pomexport.models.presets import get_preset
from pomexport.models.registry import random_model
from pomexport.runtime.measure import rss as _rss
from pomexport.runtime.sampler import time_schedule

MODES = {"pom": ("state",), "attention": ("kv_cache", "recompute")}
MAX_REPEATS = 200

# A frame runner calls the model for one whole frame and appends, per call,
# (kind, wall seconds, CPU seconds of this process over all its threads).
FrameRunner = Callable[[list], None]


@dataclass(frozen=True)
class Case:
    """One measured configuration. ``frame`` counts from 1: frame n follows n - 1 committed."""

    preset: str
    model: str  # "pom" | "attention"
    mode: str  # "state" | "kv_cache" | "recompute"
    backend: str  # the PoM step backend; the attention baseline is always eager torch
    frame: int
    steps: int
    repeats: int
    warmup: int
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0: torch's default
    min_seconds: float = 0.0  # keep repeating (up to MAX_REPEATS) until this much was timed

    @property
    def series(self) -> str:
        """The curve this point belongs to: ``pom[torch]``, ``attention[kv_cache]``..."""
        return f"pom[{self.backend}]" if self.model == "pom" else f"attention[{self.mode}]"


@dataclass
class Prepared:
    """A frame runner plus what it holds and how its context was made."""

    run_frame: FrameRunner
    held_bytes: int
    held: str
    method: str


def call_flops(cfg: PoMDiTConfig, mode: str, frame: int) -> float:
    """Approximate FLOPs of one step call at frame ``frame`` (2 x multiply-adds per layer).

    PoM: ``N`` tokens through the mixer projections (3 D C) and the MLP (8 D^2). Attention:
    qkv/out (4 D^2) and MLP per token run, plus scores and values (2 D per query-key pair):
    ``N`` queries x ``frame * N`` keys with a KV cache; with recompute all ``frame * N``
    tokens run and frame f's queries see ``f * N`` keys.
    """
    d, n = cfg.width, cfg.tokens_per_frame
    if mode == "state":
        macs = n * (3 * d * cfg.state_width + 8 * d * d)
    elif mode == "kv_cache":
        macs = n * 12 * d * d + 2 * d * n * frame * n
    else:
        macs = frame * n * 12 * d * d + 2 * d * n * n * frame * (frame + 1) // 2
    return 2.0 * macs * cfg.depth


def _timed(times: list, kind: str, call: Callable[[], object]) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    times.append((kind, time.perf_counter() - start, time.process_time() - cpu))


def prepare_pom(case: Case, model, make_backend: Callable) -> Prepared:
    """PoM's frame runner at ``case.frame`` on ``make_backend(model)``: a synthetic state of
    ``frame - 1`` committed frames, ``case.steps`` denoising calls and the commit."""
    from pomexport.runtime.state import StateBuffers

    backend = make_backend(model)
    cfg, n = backend.config, case.frame
    io = backend.allocate(1)
    io.x_t.normal_()
    io.frame_index.fill_(n - 1)
    buffers = StateBuffers(cfg, 1, backend.device)
    committed = float((n - 1) * cfg.tokens_per_frame)
    buffers.read.normal_().abs_().mul_(max(committed, 1.0) if n > 1 else 0.0)
    buffers.count.fill_(committed)
    schedule = time_schedule(case.steps).tolist()

    def denoise() -> None:
        backend.step(io, buffers.read, buffers.count, buffers.scratch)

    def commit() -> None:
        backend.step(io, buffers.read, buffers.count, buffers.write)

    def run_frame(times: list) -> None:
        for t, t_next in zip(schedule[:-1], schedule[1:], strict=True):
            io.t.fill_(t)
            _timed(times, "denoise", denoise)
            io.x_t.add_(io.v, alpha=t_next - t)
        io.t.fill_(0.0)
        _timed(times, "commit", commit)

    held = sum(b.nbytes for b in (buffers.read, buffers.write, buffers.scratch, buffers.count))
    method = f"synthetic state: count = {n - 1} committed frames, random state values"
    return Prepared(run_frame, held, "ping-pong state + scratch + count (L, 1, C) fp32", method)


def prepare_attention(case: Case, model) -> Prepared:
    """The attention DiT's frame runner at ``case.frame`` in ``case.mode``: a synthetic KV
    cache (and the commit) or a synthetic clip re-run at every step."""
    cfg, n = model.cfg, case.frame
    size = (1, cfg.in_channels, cfg.input_size, cfg.input_size)
    x, label, fi = torch.randn(size), torch.zeros(1, dtype=torch.int64), torch.tensor([n - 1])
    schedule = time_schedule(case.steps).tolist()
    if case.mode == "kv_cache":
        cache = model.empty_cache(1, n)
        cache.keys.normal_()
        cache.values.normal_()
        cache = type(cache)(cache.keys, cache.values, (n - 1) * cfg.tokens_per_frame)

        def call(t: float):
            return model.step(x, torch.tensor([t]), label, fi, cache)[0]

        held, what = cache.nbytes(n * cfg.tokens_per_frame), "KV cache, n frames (L, 1, H, T, hd)"
        method = f"synthetic KV cache: {n - 1} committed frames of random keys/values"
    else:
        clean = torch.randn(1, n - 1, *size[1:])

        def call(t: float):
            return model.step_recompute(x, torch.tensor([t]), label, fi, clean)

        held, what = clean.nbytes + x.nbytes, "clip latents so far (n frames)"
        method = f"synthetic clip: {n - 1} random clean frames re-run every step"

    def run_frame(times: list) -> None:
        for t, t_next in zip(schedule[:-1], schedule[1:], strict=True):
            _timed(times, "denoise", lambda t=t, dt=t_next - t: x.add_(call(t), alpha=dt))
        if case.mode == "kv_cache":
            _timed(times, "commit", lambda: call(0.0))

    return Prepared(run_frame, held, what, method)


def _median_ms(values: list[float]) -> float | None:
    return 1000.0 * statistics.median(values) if values else None


def load_lazy_imports() -> None:
    """Call the PolyMixer op once on a tiny input: its first call imports torch's custom-op
    machinery (~80 MB of RSS, once per process). Every row pays it before its baseline, so
    PoM and attention rows compare their own memory, not an import."""
    from pomexport.export.artifact.contract import MixerAttrs
    from pomexport.models.poly_mixer_op import mix

    h = torch.zeros(1, 1, 2)
    with torch.inference_mode():  # as the rows run
        mix(h, h, torch.zeros(1, 2), torch.zeros(1), None, MixerAttrs("moments", 2, "sigmoid", 1))


def measure(case: Case, make_backend: Callable | None = None, reset_peak: bool = False) -> dict:
    """Time ``case`` in this process and report latency and memory as one JSON-able row.

    ``make_backend(model)`` builds the PoM step backend; ``reset_peak`` resets the peak RSS
    first (in-process mode), else the peak is the process's own since it started.
    """
    wall = time.perf_counter()
    torch.manual_seed(case.seed)
    if case.threads:
        torch.set_num_threads(case.threads)
    load_lazy_imports()
    peak_reset = _rss.reset_peak_rss() if reset_peak else False
    with torch.inference_mode():
        if case.model == "pom":
            model = random_model(case.preset, case.seed)
            baseline = _rss.current_rss()
            prepared = prepare_pom(case, model, make_backend)
        else:
            model = random_attention_model(case.preset, case.seed)
            baseline = _rss.current_rss()
            prepared = prepare_attention(case, model)
        for _ in range(case.warmup):
            prepared.run_frame([])
        runs, timed = [], time.perf_counter()
        while len(runs) < case.repeats or (
            time.perf_counter() - timed < case.min_seconds and len(runs) < MAX_REPEATS
        ):
            times: list = []
            prepared.run_frame(times)
            runs.append(times)
    peak = _rss.peak_rss()
    return _row(case, prepared, runs, baseline, peak, peak_reset, time.perf_counter() - wall)


def _row(case, prepared, runs, baseline, peak, peak_reset, wall) -> dict:
    denoise = [s for times in runs for kind, s, _ in times if kind == "denoise"]
    commit = [s for times in runs for kind, s, _ in times if kind == "commit"]
    frames = [sum(s for _, s, _ in times) for times in runs]
    cpu = [sum(c for _, _, c in times) for times in runs]
    mib = _rss.MIB
    return {
        **asdict(case),
        "series": case.series,
        "frame_index": case.frame - 1,
        "calls_per_frame": len(runs[0]),
        "gflop_per_call": call_flops(get_preset(case.preset), case.mode, case.frame) / 1e9,
        "step_ms": _median_ms(denoise),
        "commit_ms": _median_ms(commit),
        "frame_ms": _median_ms(frames),
        "frame_ms_min": 1000.0 * min(frames),
        "frame_ms_runs": [round(1000.0 * f, 3) for f in frames],
        "frames_timed": len(frames),
        "frame_cpu_ms": _median_ms(cpu),
        "held_bytes": prepared.held_bytes,
        "held": prepared.held,
        "rss_with_model_mib": baseline / mib,
        "peak_rss_mib": peak / mib,
        "peak_rss_over_model_mib": (peak - baseline) / mib,
        "peak_rss_reset": peak_reset,
        "threads": torch.get_num_threads(),
        "wall_s": wall,
        "method": prepared.method,
    }
