"""The ONNX Runtime step against its roofline: the step's own GEMMs, without the rest.

A step spends its time in GEMMs (the linear layers: ``MatMul``/``Gemm`` and their fused or
integer forms) and in everything else (the PolyMixer's decomposition, LayerNorms, GELUs,
adaLN modulation, casts). The GEMMs bound what any fusion can reach, so this measures, at
one thread count and in one process:

1. ``step_ms``: the ONNX Runtime step; one profiled run set tells each node's kernel time,
   op type and input shapes;
2. ``gemm_ms``: every GEMM node of the session's *optimized* graph rebuilt as a graph of its
   own and timed alone (``runtime/measure/roofline_gemms.py``), summed: the step's GEMMs at
   their best, weights in cache — the roofline of fusion;
3. ``gemm_back_to_back_ms``: the same GEMMs in one graph, in step order, their weights
   streaming from memory as in the step: what the GEMMs cost inside any step;
4. ``ratio = step_ms / gemm_ms`` (and over the back-to-back time), the share of the non-GEMM
   kernel time per op type (from the profile), so the next bottleneck is always named, and,
   when asked, the eager torch step.

The machine is shared, so every timing (the step, each GEMM alone, the GEMMs back to back,
torch) is taken in the same ``rounds``, one after the other, and each keeps its best round:
a burst of load then slows one round of every timing instead of one timing of every round.
Input values are random: latency depends on shapes, not values.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from pomexport.errors import ConfigError
from pomexport.runtime.measure.roofline_gemms import (
    GEMM_OPS,
    back_to_back_model,
    bound_runner,
    gemm_nodes,
    per_op,
    random_feeds,
    single_node_model,
)


@dataclass(frozen=True)
class RooflineSettings:
    """What one roofline row measures: ``threads`` intra-op threads, ``batch`` streams; each
    timing the median of ``repeats`` runs after ``warmup``, the best of ``rounds``."""

    batch: int = 1
    threads: int = 1
    repeats: int = 20
    warmup: int = 3
    rounds: int = 3

    def __post_init__(self) -> None:
        if min(self.batch, self.threads, self.repeats, self.rounds) < 1 or self.warmup < 0:
            raise ConfigError(
                "roofline: batch, threads, repeats and rounds must be >= 1 and warmup >= 0,"
                f" got {self}"
            )


def _session(model: bytes, settings: RooflineSettings, **extra):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # ORT's note on saving an optimized graph is not news here
    for key, value in extra.items():
        setattr(options, key, value)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _feeds(session, batch: int, seed: int = 0) -> dict:
    """Random inputs of the session's declared shapes; symbolic dims take ``batch``
    (floats positive: counts and times stay valid)."""
    entries = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        entries[arg.name] = {arg.type.removeprefix("tensor(").removesuffix(")"): shape}
    return random_feeds(entries, seed)


def _median_ms(run, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


_PROFILED_RUNS = 3  # after warmup: the shares are of kernel totals, the shapes of any run


def _profiled_nodes(model: bytes, settings: RooflineSettings, work: Path) -> list:
    """The kernel events of a few profiled steps of the model (its timings come from
    :func:`best_of_rounds`, without the profiler); also writes work/optimized.onnx."""
    session = _session(
        model,
        settings,
        enable_profiling=True,
        profile_file_prefix=str(work / "profile"),
        optimized_model_filepath=str(work / "optimized.onnx"),
    )
    feeds = _feeds(session, settings.batch)
    for _ in range(settings.warmup + _PROFILED_RUNS):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    return [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]


def _overhead_run(settings: RooflineSettings) -> Callable[[], object]:
    """One empty ``session.run`` (an Identity of 1 float): its time is taken off each GEMM
    timed alone, since in the step the GEMMs share one run."""
    import numpy as np
    from onnx import helper

    x = helper.make_tensor_value_info("x", 1, [1])
    y = helper.make_tensor_value_info("y", 1, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return _runner(_session(model.SerializeToString(), settings), {"x": np.zeros(1, np.float32)})


def _timers(model: bytes, work: Path, kernels: list, settings: RooflineSettings) -> tuple:
    """{name: run} of everything a row times, and the step's GEMM nodes. Names: ``step``,
    ``back_to_back``, and one per distinct GEMM key (equal shapes are timed once)."""
    gemms, initializers = gemm_nodes(work / "optimized.onnx", kernels)
    step = _session(model, settings)
    feeds = _feeds(step, settings.batch)
    runs = {"step": _runner(step, feeds)}
    if gemms:
        runs["back_to_back"] = _chain_runner(gemms, initializers, settings)
    for gemm in gemms:
        if gemm.key not in runs:
            alone = _session(single_node_model(gemm, initializers), settings)
            runs[gemm.key] = _runner(alone, _feeds(alone, settings.batch))
    return runs, gemms


def _chain_runner(gemms: list, initializers: dict, settings: RooflineSettings):
    chain, inputs, outputs = back_to_back_model(gemms, initializers)
    return bound_runner(_session(chain, settings), inputs, outputs)


def gemm_chain(model: bytes, settings: RooflineSettings) -> Callable[[], object] | None:
    """One run of ``model``'s GEMM nodes back to back (``gemm_back_to_back_ms``'s run) at
    ``settings``' batch and threads; None when its optimized graph has no GEMM."""
    with tempfile.TemporaryDirectory(prefix="pomexport-roofline-") as tmp:
        kernels = _profiled_nodes(model, settings, Path(tmp))
        gemms, initializers = gemm_nodes(Path(tmp) / "optimized.onnx", kernels)
    return _chain_runner(gemms, initializers, settings) if gemms else None


def _runner(session, feeds: dict) -> Callable[[], object]:
    return lambda: session.run(None, feeds)


def best_of_rounds(runs: dict, settings: RooflineSettings) -> dict:
    """{name: ms}: each run's median (``repeats`` after ``warmup``) in every round, all runs
    of a round one after the other, and each run's best round kept (module docstring)."""
    best: dict = {}
    for _ in range(settings.rounds):
        for name, run in runs.items():
            ms = _median_ms(run, settings.repeats, settings.warmup)
            best[name] = min(ms, best.get(name, ms))
    return best


def op_shares(kernels: list) -> dict[str, float]:
    """Share of the profiled non-GEMM kernel time per op type, largest first."""
    time_by_op: dict[str, float] = defaultdict(float)
    for event in kernels:
        op = event["args"]["op_name"]
        if op not in GEMM_OPS:
            time_by_op[op] += event["dur"]
    total = sum(time_by_op.values()) or 1.0
    return {op: round(t / total, 4) for op, t in Counter(time_by_op).most_common()}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _row(best: dict, name: str, gemms: list, kernels: list, settings) -> dict:
    """One row of :func:`measure` from the best times of model ``name``'s runs."""
    overhead = best["overhead"]  # in the step the GEMMs share one session.run
    alone = {g.key: max(best[(name, g.key)] - overhead, 0.0) for g in gemms}
    by_op = per_op(gemms, alone)
    gemm_ms = sum(ms for ms, _ in by_op.values())
    step_ms, chain_ms = best[(name, "step")], best.get((name, "back_to_back"), 0.0)
    row = {
        "batch": settings.batch,
        "threads": settings.threads,
        "rounds": settings.rounds,
        "step_ms": round(step_ms, 3),
        "gemm_ms": round(gemm_ms, 3),
        "gemm_back_to_back_ms": round(chain_ms, 3),
        "gemm_nodes_per_step": len(gemms),
        # float MatMul beside MatMulIntegerToFloat: what an int8 step still runs in float
        "gemm_by_op": {op: {"ms": round(ms, 3), "nodes": n} for op, (ms, n) in by_op.items()},
        "step_over_gemm": _ratio(step_ms, gemm_ms),
        "step_over_gemm_back_to_back": _ratio(step_ms, chain_ms),
        "non_gemm_share": op_shares(kernels),
    }
    if "torch" in best:
        row["torch_fp32_ms"] = round(best["torch"], 3)
        row["ort_speedup_over_torch"] = _ratio(best["torch"], step_ms)
    return row


def measure(
    models: dict[str, bytes],
    settings: RooflineSettings | None = None,
    torch_step: Callable[[], object] | None = None,
    progress=None,
) -> dict[str, dict]:
    """{name: row} for ONNX ``models`` (name -> serialized bytes) on the CPU EP: the step,
    its GEMMs alone and back to back, their ratios and the non-GEMM share per op type
    (module docstring). Every model's timings (and ``torch_step``'s, the eager torch step,
    when given) are taken in the same rounds, so their ratios are side by side."""
    settings = settings or RooflineSettings()
    runs: dict = {"overhead": _overhead_run(settings)}
    found = {}
    with tempfile.TemporaryDirectory(prefix="pomexport-roofline-") as tmp:
        for name, model in models.items():
            work = Path(tmp) / str(len(found))
            work.mkdir()
            kernels = _profiled_nodes(model, settings, work)
            timers, gemms = _timers(model, work, kernels, settings)
            runs.update({(name, key): run for key, run in timers.items()})
            found[name] = (gemms, kernels)
    if torch_step is not None:
        runs["torch"] = torch_step
    if progress is not None:
        progress(f"  timing {len(runs)} runs x {settings.rounds} rounds")
    best = best_of_rounds(runs, settings)
    return {name: _row(best, name, *found[name], settings) for name in models}


def roofline(
    model: bytes,
    settings: RooflineSettings | None = None,
    torch_step: Callable[[], object] | None = None,
) -> dict:
    """:func:`measure`'s row of one ONNX ``model`` (serialized bytes)."""
    return measure({"model": model}, settings, torch_step)["model"]


def _torch_step(model, batch: int) -> Callable[[], None]:
    """One eager torch step of ``model`` at ``batch``, frame 2 (a non-empty state)."""
    from pomexport.runtime.state import StateBuffers
    from pomexport.runtime.torch_backend import TorchBackend

    backend = TorchBackend(model)
    io = backend.allocate(batch)
    io.x_t.normal_()
    io.t.fill_(0.5)
    io.frame_index.fill_(1)
    buffers = StateBuffers(backend.config, batch, backend.device)
    buffers.read.normal_().abs_()
    buffers.count.fill_(float(backend.config.tokens_per_frame))

    def step() -> None:
        backend.step(io, buffers.read, buffers.count, buffers.scratch)

    return step


def artifact_graph(model, precision: str) -> bytes:
    """The ONNX graph ONNX Runtime CPU runs for ``precision`` (bench cache, hash-verified)."""
    from pomexport.runtime.measure.bench_int8 import cached_int8_artifact
    from pomexport.runtime.measure.bench_ort import cached_artifact, load_cached

    if precision == "int8":
        return load_cached(cached_int8_artifact(model)).read_verified("model.ort-cpu.onnx")
    return load_cached(cached_artifact(model, precision)).read_verified("model.onnx")


def roofline_rows(
    preset: str = "S/2",
    precisions: tuple[str, ...] = ("fp32", "int8"),
    batches: tuple[int, ...] = (1, 2),
    settings: RooflineSettings | None = None,
    progress=None,
) -> list[dict]:
    """One :func:`roofline` row per (precision, batch) of ``preset`` (random weights), each
    with the eager torch fp32 step at the same batch and threads timed in its rounds."""
    import torch

    from pomexport.models.registry import random_model

    settings = settings or RooflineSettings()
    torch.set_num_threads(settings.threads)
    model = random_model(preset)
    rows = []
    for batch in batches:
        at = replace(settings, batch=batch)
        if progress is not None:
            names = ",".join(precisions)
            progress(f"roofline {preset} {names} batch {batch}, {at.threads} thread(s)")
        graphs = {precision: artifact_graph(model, precision) for precision in precisions}
        measured = measure(graphs, at, _torch_step(model, batch), progress)
        for precision, row in measured.items():
            if "fp32" in measured:  # the same rounds: a side-by-side ratio
                row["speedup_over_fp32"] = _ratio(measured["fp32"]["step_ms"], row["step_ms"])
            rows.append({**row, "preset": preset, "precision": precision})
    return rows


SCHEMA = "pomexport.roofline/2"
PRECISIONS = ("fp32", "fp16", "int8")
METHOD = {
    "rounds": "every timing of a preset and batch, all precisions' (step, each GEMM alone, "
    "GEMMs back to back) and torch's, is the median of `repeats` runs after `warmup`, taken "
    "in each of `rounds` rounds one after the other; each keeps its best round",
    "step_ms": "ONNX Runtime CPU step (random inputs, frame with a non-empty state, no "
    "profiler) at `threads` intra-op threads",
    "gemm_ms": "sum over the GEMM nodes of the session's optimized graph of each node rebuilt "
    "alone (same op, attributes, profiled shapes, constant weights) and timed alone with the "
    "same session options, less one empty session.run: the GEMMs with their weights in cache",
    "gemm_back_to_back_ms": "the same GEMM nodes in one graph, in step order, inputs shared "
    "per shape, outputs into one buffer per shape: the GEMMs with their weights streaming from "
    "memory as in the step",
    "step_over_gemm_back_to_back": "step_ms / gemm_back_to_back_ms: what the non-GEMM ops "
    "cost, the weights' trip from memory left out",
    "gemm_by_op": "gemm_ms and its node count per GEMM op type (an int8 step's float MatMuls "
    "beside its MatMulIntegerToFloat)",
    "step_over_gemm": "step_ms / gemm_ms: 1.0 is the roofline of fusion alone",
    "non_gemm_share": "share of the profiled non-GEMM kernel time per op type",
    "torch_fp32_ms": "eager torch fp32 step at the same batch and threads, in the same rounds",
    "speedup_over_fp32": "the fp32 row's step_ms / this row's, both from the same rounds",
    "weights": "random weights of the preset; int8 calibrated on a small bench capture",
}


def roofline_report(
    presets: tuple[str, ...],
    precisions: tuple[str, ...] = PRECISIONS,
    batches: tuple[int, ...] = (1, 2),
    settings: RooflineSettings | None = None,
    progress=None,
) -> dict:
    """``pomexport bench --roofline``: :func:`roofline_rows` of every preset, with the
    machine (CPU, load) and the method, as one JSON-able report."""
    from datetime import datetime, timezone

    from pomexport.models.presets import get_preset
    from pomexport.runtime.measure.rss import machine_info

    settings = settings or RooflineSettings()
    for preset in presets:
        get_preset(preset)  # ConfigError for an unknown name, before any work
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ConfigError(f"roofline precisions must be among {PRECISIONS}, got {precisions}")
    if not batches or min(batches) < 1:
        raise ConfigError(f"roofline batches must be >= 1, got {list(batches)}")
    machine = machine_info()
    rows = [
        row
        for preset in presets
        for row in roofline_rows(preset, precisions, batches, settings, progress)
    ]
    machine["loadavg_at_end"] = list(os.getloadavg())
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "settings": {
            **{k: v for k, v in asdict(settings).items() if k != "batch"},  # per row instead
            "precisions": list(precisions),
            "batches": list(batches),
        },
        "method": METHOD,
        "rows": rows,
    }
