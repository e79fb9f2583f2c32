"""``inspect_artifact``: what an artifact (or a plain ONNX file) holds, and will TensorRT take it.

The report carries the IO contract (names, shapes, dtypes), the op histogram, the precision mix
(share of MatMul/Gemm/Conv FLOPs in each dtype at a representative batch), the file sizes and
the TensorRT lint of every ONNX file (:mod:`pomexport.export.trt_lint`).

    report = inspect_artifact("out/tiny-fp16")
    print(report.to_text()); assert report.lint_ok
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export._inspect_text import format_report
from pomexport.export._lint_graph import GraphView, dtype_name, light_copy
from pomexport.export.trt_lint import DEFAULT_VERSIONS, LintReport, lint_model

log = logging.getLogger(__name__)

_GEMM_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "MatMulInteger", "QLinearMatMul")
_INT8_OPS = ("MatMulInteger", "QLinearMatMul")
# Ops that move data without changing values: a DequantizeLinear behind them still feeds int8.
_PASS_THROUGH = ("Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")


@dataclass(frozen=True)
class TensorInfo:
    """One graph input/output: name, dims (ints or symbols) and dtype."""

    name: str
    shape: tuple[int | str, ...] | None
    dtype: str

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": self.shape, "dtype": self.dtype}


@dataclass
class PrecisionMix:
    """MatMul/Gemm/Conv FLOPs per compute dtype at ``batch`` (int8 = fed by DequantizeLinear)."""

    batch: int
    flops: dict[str, int] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)  # GEMM nodes with unknown shapes
    assumed_dims: dict[str, int] = field(default_factory=dict)  # non-batch symbols set to 1

    @property
    def total(self) -> int:
        return sum(self.flops.values())

    @property
    def shares(self) -> dict[str, float]:
        """dtype -> fraction of all counted FLOPs (empty when nothing was counted)."""
        total = self.total
        return {k: v / total for k, v in self.flops.items()} if total else {}

    def to_dict(self) -> dict:
        return {
            "batch": self.batch,
            "flops": dict(self.flops),
            "shares": self.shares,
            "unresolved": list(self.unresolved),
            "assumed_dims": dict(self.assumed_dims),
        }


@dataclass
class InspectReport:
    """Everything ``pomexport inspect`` prints; ``lint_ok`` is False on any lint error."""

    source: str
    kind: str  # "artifact" or "onnx"
    model_file: str
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    op_histogram: dict[str, int]
    functions: list[str]
    precision: PrecisionMix
    files: dict[str, int]
    lint: dict[str, LintReport]
    manifest: dict = field(default_factory=dict)

    @property
    def lint_ok(self) -> bool:
        return all(self.lint.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.files.values())

    def to_dict(self) -> dict:
        """JSON-ready form of the whole report."""
        return {
            "source": self.source,
            "kind": self.kind,
            "model_file": self.model_file,
            "manifest": self.manifest,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "op_histogram": self.op_histogram,
            "functions": self.functions,
            "precision": self.precision.to_dict(),
            "files": self.files,
            "total_bytes": self.total_bytes,
            "lint_ok": self.lint_ok,
            "lint": {name: report.to_dict() for name, report in self.lint.items()},
        }

    def to_text(self, max_findings: int = 20) -> str:
        """A readable multi-line summary (what the CLI prints)."""
        return format_report(self, max_findings)


def io_contract(model: onnx.ModelProto) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """The graph's inputs (initializers excluded) and outputs with dims and dtypes."""
    initializers = {t.name for t in model.graph.initializer}

    def info(value: onnx.ValueInfoProto) -> TensorInfo:
        t = value.type.tensor_type
        shape = None
        if t.HasField("shape"):
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in t.shape.dim
            )
        return TensorInfo(value.name, shape, dtype_name(t.elem_type))

    inputs = [info(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [info(v) for v in model.graph.output]


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    """Op type -> count over the stored graph (custom ops as ``domain::op``), most used first."""
    counts = Counter(
        n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        for n in model.graph.node
    )
    return dict(counts.most_common())


def _batch_symbols(model: onnx.ModelProto) -> set[str]:
    """Symbols on axis 0 of any graph input: the batch (``state`` [L, B, C] reuses it)."""
    symbols = set()
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value") and dims[0].dim_param:
            symbols.add(dims[0].dim_param)
    return symbols


def _concrete(model: onnx.ModelProto, batch: int) -> tuple[onnx.ModelProto, dict[str, int]]:
    """A weight-less copy with every symbolic input dim fixed (batch symbols -> ``batch``)."""
    light = light_copy(model)
    batch_symbols = _batch_symbols(model)
    assumed: dict[str, int] = {}
    for value in light.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                continue
            symbol = dim.dim_param or "?"
            size = batch if symbol in batch_symbols else 1
            if symbol not in batch_symbols:
                assumed[symbol] = 1
            dim.dim_value = size
    return light, assumed


def _gemm_flops(view: GraphView, node: onnx.NodeProto) -> int | None:
    """2·M·K·N-style FLOPs of one GEMM-like node from its inferred shapes, or None."""
    out = view.shape(node.output[0]) if node.output else None
    a = view.shape(node.input[0]) if node.input else None
    b = view.shape(node.input[1]) if len(node.input) > 1 else None
    if node.op_type in ("QLinearMatMul",):
        b = view.shape(node.input[3]) if len(node.input) > 3 else None
    shapes = (out, a, b)
    if any(s is None or not all(isinstance(d, int) for d in s) for s in shapes):
        return None
    if node.op_type in ("Conv", "ConvTranspose"):
        source = out if node.op_type == "Conv" else a
        return 2 * math.prod(source) * math.prod(b[1:])
    if node.op_type == "Gemm":
        trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
        return 2 * math.prod(out) * (a[0] if trans_a else a[-1])
    return 2 * math.prod(out) * a[-1]


def _fed_by_dequantize(view: GraphView, tensor: str) -> bool:
    node = view.producer.get(tensor)
    while node is not None and node.op_type in _PASS_THROUGH:
        node = view.producer.get(node.input[0])
    return node is not None and node.op_type == "DequantizeLinear"


def _compute_dtype(view: GraphView, node: onnx.NodeProto) -> str:
    if node.op_type in _INT8_OPS or any(_fed_by_dequantize(view, n) for n in node.input[:2]):
        return "int8"
    return view.dtype(node.input[0]) or "unknown"


def precision_mix(model: onnx.ModelProto, batch: int = 1) -> PrecisionMix:
    """FLOPs of MatMul/Gemm/Conv per compute dtype, with symbolic dims fixed (batch -> ``batch``).

    Each GEMM's FLOPs (2 per multiply-add, bias ignored) go to the dtype of its first input,
    or to ``int8`` when an input comes from a DequantizeLinear (through reshapes/transposes).
    Local functions are inlined first, so the portable PolyMixer's body counts too.
    """
    concrete, assumed = _concrete(model, batch)
    view = GraphView.build(concrete)
    mix = PrecisionMix(batch=batch, assumed_dims=assumed)
    for node in view.nodes:
        if node.op_type not in _GEMM_OPS or node.domain not in ("", "ai.onnx"):
            continue
        flops = _gemm_flops(view, node)
        if flops is None:
            mix.unresolved.append(view.name(node))
            continue
        dtype = _compute_dtype(view, node)
        mix.flops[dtype] = mix.flops.get(dtype, 0) + flops
    return mix


def _load(path: Path) -> onnx.ModelProto:
    """Graph and weight metadata only: external weights are not read (not needed here)."""
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several unrelated types
        raise ArtifactError(f"{path}: not a readable ONNX model ({e})") from e


def _external_files(model: onnx.ModelProto, folder: Path) -> dict[str, int]:
    """Sizes of the external-data files a plain ONNX file refers to (when present)."""
    sizes = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), None)
        path = folder / location if location else None
        if path is not None and location not in sizes and path.is_file():
            sizes[location] = path.stat().st_size
    return sizes


def _dim_bounds(model: onnx.ModelProto, contract: list[dict], batch: tuple) -> dict:
    """Map the ONNX dim symbols standing at the contract's ``B`` positions to the batch range."""
    by_name = {v.name: v for v in model.graph.input}
    bounds = {}
    for entry in contract:
        value = by_name.get(entry["name"])
        if value is None:
            continue
        dims = value.type.tensor_type.shape.dim
        for axis, symbol in enumerate(entry["shape"]):
            if symbol == "B" and axis < len(dims) and dims[axis].dim_param:
                bounds[dims[axis].dim_param] = tuple(batch)
    return bounds


def _inspect_onnx(path: Path, trt_versions: Iterable[str], batch: int | None) -> InspectReport:
    if path.suffix != ".onnx":
        raise ArtifactError(f"{path}: expected an artifact directory or a .onnx file")
    model = _load(path)
    inputs, outputs = io_contract(model)
    files = {path.name: path.stat().st_size, **_external_files(model, path.parent)}
    return InspectReport(
        source=str(path),
        kind="onnx",
        model_file=path.name,
        inputs=inputs,
        outputs=outputs,
        op_histogram=op_histogram(model),
        functions=[f"{f.domain}::{f.name}" for f in model.functions],
        precision=precision_mix(model, batch or 1),
        files=files,
        lint={path.name: lint_model(model, trt_versions)},
    )


def _inspect_directory(root: Path, trt_versions: Iterable[str], batch: int | None):
    from pomexport.export.artifact import FLAVOR_FILES, load_artifact

    artifact = load_artifact(root)
    versions = tuple(trt_versions)
    lints, models = {}, {}
    for flavor in artifact.flavors:
        path = artifact.onnx_path(flavor)
        models[flavor] = model = _load(path)
        if flavor not in FLAVOR_FILES:
            continue  # not a TensorRT graph (int8's "ort-cpu" has uint8 activations for ORT)
        bounds = _dim_bounds(model, artifact.inputs, artifact.batch)
        lints[path.name] = lint_model(model, versions, dim_bounds=bounds)
    flavor = "portable" if "portable" in models else next(iter(models))
    model = models[flavor]
    inputs, outputs = io_contract(model)
    keys = ("precision", "variant", "flavors", "opset", "batch")
    return InspectReport(
        source=str(root),
        kind="artifact",
        model_file=artifact.onnx_path(flavor).name,
        inputs=inputs,
        outputs=outputs,
        op_histogram=op_histogram(model),
        functions=[f"{f.domain}::{f.name}" for f in model.functions],
        precision=precision_mix(model, batch or artifact.batch[1]),
        files={name: int(entry.get("bytes", 0)) for name, entry in artifact.files.items()},
        lint=lints,
        manifest={"model": artifact.model_name, **{k: artifact.manifest.get(k) for k in keys}},
    )


def inspect_artifact(
    path: str | os.PathLike,
    trt_versions: Iterable[str] = DEFAULT_VERSIONS,
    batch: int | None = None,
) -> InspectReport:
    """Inspect an artifact directory (verified with ``load_artifact``) or a plain ``.onnx`` file.

    ``batch`` sets the representative batch of the FLOP estimate (default: the artifact's
    ``opt`` batch, or 1 for a plain ONNX file). Raises ArtifactError for a missing path, an
    unreadable file, or an artifact that fails verification.
    """
    path = Path(path)
    if batch is not None and batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if path.is_dir():
        return _inspect_directory(path, trt_versions, batch)
    if path.is_file():
        return _inspect_onnx(path, trt_versions, batch)
    raise ArtifactError(f"{path}: no such artifact directory or ONNX file")
