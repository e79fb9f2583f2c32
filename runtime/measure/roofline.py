"""The ONNX Runtime step against its roofline: the step's own GEMMs, timed alone.

A step spends its time in GEMMs (the linear layers: ``MatMul``/``Gemm`` and their fused or
integer forms) and in everything else (the PolyMixer's decomposition, LayerNorms, GELUs,
adaLN modulation, casts). The GEMMs bound what any fusion can reach, so this measures, at
one thread count and in one process:

1. ``step_ms``: the median ONNX Runtime step, profiled once to learn each node's kernel
   time, op type and input shapes;
2. ``gemm_ms``: every GEMM node of the session's *optimized* graph rebuilt as a graph of its
   own (same op, attributes, input shapes and dtypes) and timed alone with the same session
   options — the sum over nodes is the time the step could not go below without faster
   GEMMs;
3. ``ratio = step_ms / gemm_ms`` and the share of the non-GEMM kernel time per op type
   (from the profile), so the next bottleneck is always named.

Input values are random: latency depends on shapes, not values.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pomexport.errors import ConfigError

GEMM_OPS = frozenset(
    {"MatMul", "Gemm", "FusedMatMul", "MatMulInteger", "QLinearMatMul", "QGemm",
     "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "Conv", "QLinearConv", "FusedConv"}
)  # fmt: skip
_NUMPY = {"float": np.float32, "float16": np.float16, "int64": np.int64, "int32": np.int32,
          "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}  # fmt: skip


@dataclass(frozen=True)
class RooflineSettings:
    """What one roofline row measures: ``threads`` intra-op threads, ``batch`` streams."""

    batch: int = 1
    threads: int = 1
    repeats: int = 20
    warmup: int = 3

    def __post_init__(self) -> None:
        if self.batch < 1 or self.threads < 1 or self.repeats < 1 or self.warmup < 0:
            raise ConfigError(
                f"roofline: batch, threads and repeats must be >= 1 and warmup >= 0, got {self}"
            )


def _session(model: bytes, settings: RooflineSettings, **extra):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    for key, value in extra.items():
        setattr(options, key, value)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _feeds(session, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the session's declared shapes; symbolic dims take ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in session.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in arg.shape]
        dtype = _NUMPY[arg.type.removeprefix("tensor(").removesuffix(")")]
        if np.issubdtype(dtype, np.floating):
            value = rng.uniform(0.1, 1.0, shape)  # positive: counts and times stay valid
        else:
            value = np.zeros(shape)
        feeds[arg.name] = value.astype(dtype)
    return feeds


def _median_ms(run, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _profiled_nodes(model: bytes, settings: RooflineSettings, work: Path) -> tuple[float, list]:
    """(median step ms, kernel events) of the model; also writes work/optimized.onnx."""
    session = _session(
        model,
        settings,
        enable_profiling=True,
        profile_file_prefix=str(work / "profile"),
        optimized_model_filepath=str(work / "optimized.onnx"),
    )
    feeds = _feeds(session, settings.batch)
    step_ms = _median_ms(lambda: session.run(None, feeds), settings.repeats, settings.warmup)
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    return step_ms, kernels


def _single_node_model(node, args: dict, initializers: dict) -> bytes:
    """The ``node`` alone. Its constant inputs stay initializers (ONNX Runtime prepacks
    constant weights, as in the step); the others become graph inputs of the profiled types
    and shapes (:func:`_variable_shapes`)."""
    from onnx import helper

    types = {"float": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10}

    def info(name: str, entry: dict):
        ((dtype, dims),) = entry.items()
        return helper.make_tensor_value_info(name, types[dtype], dims)

    present = [n for n in node.input if n]
    shapes = _variable_shapes(present, args["input_type_shape"], initializers)
    variable = [n for n in present if n not in initializers]
    inputs = [info(n, e) for n, e in zip(variable, shapes, strict=True)]
    outputs = [info(n, e) for n, e in zip(node.output, args["output_type_shape"], strict=True)]
    constants = [initializers[n] for n in node.input if n in initializers]
    graph = helper.make_graph([node], "gemm", inputs, outputs, constants)
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10).SerializeToString()


def _variable_shapes(present: list[str], shapes: list[dict], initializers: dict) -> list[dict]:
    """The profiled shapes of the non-constant inputs among ``present``. The profile lists
    the inputs in order but leaves out those the kernel prepacked (constant weights: all of
    a MatMul's, only B of a MatMulIntegerToFloat's): a constant is matched to the next entry
    when its dtype and dims are that entry's, else taken as left out."""
    from onnx import helper

    left, found = list(shapes), []
    for name in present:
        if name not in initializers:
            found.append(left.pop(0))
            continue
        tensor = initializers[name]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type).name
        dtype = {"float32": "float"}.get(dtype, dtype)
        if left and left[0] == {dtype: list(tensor.dims)}:
            left.pop(0)
    return found


def _gemm_alone_ms(work: Path, kernels: list, settings: RooflineSettings) -> dict[str, list]:
    """Each GEMM op type's [summed median ms of its nodes run alone, node count]."""
    import onnx

    graph = onnx.load(work / "optimized.onnx").graph
    nodes = {n.name: n for n in graph.node}
    initializers = {i.name: i for i in graph.initializer}
    timed: dict[str, float] = {}  # a node shape+attributes key -> ms (repeated shapes reuse)
    by_op: dict[str, list] = defaultdict(lambda: [0.0, 0])
    seen = set()
    overhead = _run_overhead_ms(settings)
    for event in kernels:  # the profile holds every timed run: each node counts once
        node = nodes.get(event["name"].removesuffix("_kernel_time"))
        if node is None or node.op_type not in GEMM_OPS or node.name in seen:
            continue
        seen.add(node.name)
        shapes = event["args"]["input_type_shape"]
        key = f"{node.op_type}{node.domain}{shapes}{[str(a) for a in node.attribute]}"
        if key not in timed:
            session = _session(_single_node_model(node, event["args"], initializers), settings)
            feeds = _feeds(session, settings.batch)
            ms = _median_ms(
                lambda s=session, f=feeds: s.run(None, f), settings.repeats, settings.warmup
            )
            timed[key] = max(ms - overhead, 0.0)
        by_op[node.op_type][0] += timed[key]
        by_op[node.op_type][1] += 1
    return dict(by_op)


def _run_overhead_ms(settings: RooflineSettings) -> float:
    """What one ``session.run`` costs around its kernels (an Identity of 1 float): taken off
    each GEMM timed alone, since in the step the GEMMs share one run."""
    from onnx import helper

    x = helper.make_tensor_value_info("x", 1, [1])
    y = helper.make_tensor_value_info("y", 1, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    session = _session(model.SerializeToString(), settings)
    feeds = {"x": np.zeros(1, np.float32)}
    return _median_ms(lambda: session.run(None, feeds), 200, 20)


def op_shares(kernels: list) -> dict[str, float]:
    """Share of the profiled non-GEMM kernel time per op type, largest first."""
    time_by_op: dict[str, float] = defaultdict(float)
    for event in kernels:
        op = event["args"]["op_name"]
        if op not in GEMM_OPS:
            time_by_op[op] += event["dur"]
    total = sum(time_by_op.values()) or 1.0
    return {op: round(t / total, 4) for op, t in Counter(time_by_op).most_common()}


def roofline(model: bytes, settings: RooflineSettings | None = None) -> dict:
    """Step time, its GEMMs alone, their ratio and the non-GEMM share per op type of the
    ONNX ``model`` (serialized bytes) on the CPU EP (module docstring)."""
    settings = settings or RooflineSettings()
    with tempfile.TemporaryDirectory(prefix="pomexport-roofline-") as tmp:
        step_ms, kernels = _profiled_nodes(model, settings, Path(tmp))
        by_op = _gemm_alone_ms(Path(tmp), kernels, settings)
    gemm_ms = sum(ms for ms, _ in by_op.values())
    return {
        "batch": settings.batch,
        "threads": settings.threads,
        "step_ms": round(step_ms, 3),
        "gemm_ms": round(gemm_ms, 3),
        "gemm_nodes_per_step": sum(n for _, n in by_op.values()),
        # float MatMul beside MatMulIntegerToFloat: what an int8 step still runs in float
        "gemm_by_op": {op: {"ms": round(ms, 3), "nodes": n} for op, (ms, n) in by_op.items()},
        "step_over_gemm": round(step_ms / gemm_ms, 3) if gemm_ms else None,
        "non_gemm_share": op_shares(kernels),
    }


def _torch_step_ms(model, batch: int, settings: RooflineSettings) -> float:
    """Median eager torch step of ``model`` at ``batch``, frame 2 (a non-empty state)."""
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

    return _median_ms(step, settings.repeats, settings.warmup)


def _artifact_graph(model, precision: str) -> bytes:
    """The ONNX graph ONNX Runtime CPU runs for ``precision`` (bench cache, hash-verified)."""
    from pomexport.export.artifact import load_artifact
    from pomexport.runtime.measure.bench_int8 import cached_int8_artifact
    from pomexport.runtime.measure.bench_ort import cached_artifact

    if precision == "int8":
        artifact = load_artifact(cached_int8_artifact(model))
        return artifact.read_verified("model.ort-cpu.onnx")
    return load_artifact(cached_artifact(model, precision)).read_verified("model.onnx")


def roofline_rows(
    preset: str = "S/2",
    precisions: tuple[str, ...] = ("fp32", "int8"),
    batches: tuple[int, ...] = (1, 2),
    settings: RooflineSettings | None = None,
    progress=None,
) -> list[dict]:
    """One :func:`roofline` row per (precision, batch) of ``preset`` (random weights), each
    with the eager torch fp32 step at the same batch and threads beside it."""
    import torch

    from pomexport.models.registry import random_model

    settings = settings or RooflineSettings()
    torch.set_num_threads(settings.threads)
    model = random_model(preset)
    rows = []
    for batch in batches:
        at = RooflineSettings(batch, settings.threads, settings.repeats, settings.warmup)
        torch_ms = _torch_step_ms(model, batch, at)
        for precision in precisions:
            if progress is not None:
                progress(f"roofline {preset} {precision} batch {batch}, {at.threads} thread(s)")
            row = roofline(_artifact_graph(model, precision), at)
            row.update(preset=preset, precision=precision, torch_fp32_ms=round(torch_ms, 3))
            row["ort_speedup_over_torch"] = round(torch_ms / row["step_ms"], 3)
            rows.append(row)
    return rows


SCHEMA = "pomexport.roofline/1"
PRECISIONS = ("fp32", "fp16", "int8")
METHOD = {
    "step_ms": "median ONNX Runtime CPU step (random inputs, frame with a non-empty state), "
    "`repeats` runs after `warmup`, at `threads` intra-op threads",
    "gemm_ms": "sum over the GEMM nodes of the session's optimized graph of each node rebuilt "
    "alone (same op, attributes, profiled shapes, constant weights) and timed alone with the "
    "same session options, less one empty session.run",
    "gemm_by_op": "gemm_ms and its node count per GEMM op type (an int8 step's float MatMuls "
    "beside its MatMulIntegerToFloat)",
    "step_over_gemm": "step_ms / gemm_ms: 1.0 is the roofline of fusion alone",
    "non_gemm_share": "share of the profiled non-GEMM kernel time per op type",
    "torch_fp32_ms": "median eager torch fp32 step at the same batch and threads",
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
