"""TensorRT lint of an ONNX graph: will TensorRT 10.3 / 11.x parse it, and parse it well?

Every node's op and the dtypes of its data inputs are checked against TensorRT's ONNX operator
table (``export/data/trt_onnx_ops.json``, derived from onnx-tensorrt's ``docs/operators.md``,
see ``export/data/README.md``). Custom-domain nodes must resolve the way the parser resolves
them: a built-in op of that name, a model-local function, or our PolyMixer plugin, by the
parser's own lookup rules (``plugin_lookup`` in the table, :mod:`._plugin_lookup`). Warnings
flag patterns TensorRT handles poorly: int64 shape arithmetic on the hot path, dynamic dims
without an optimization-profile range, mixed input types in strongly typed mode, DOUBLE, and
quantized types outside Q/DQ.

    report = lint_model(onnx.load("model.onnx", load_external_data=False))
    if not report: print(report.errors)
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources

import onnx

from pomexport.errors import ConfigError
from pomexport.export import _lint_patterns as patterns
from pomexport.export._lint_graph import GraphView, all_nodes
from pomexport.export._lint_patterns import Finding
from pomexport.export._plugin_lookup import LOCAL_FUNCTION, PLUGIN, LookupRule, resolve
from pomexport.export.artifact.contract import PLUGIN_NAMESPACE_ATTRIBUTE

log = logging.getLogger(__name__)

ERROR, WARNING, INFO = "error", "warning", "info"
DEFAULT_VERSIONS = ("10.3", "11")
_STANDARD_DOMAINS = ("", "ai.onnx")
# Inputs whose dtype is the op's data type when the output-type rule below picks the wrong ones.
_DATA_INPUTS = {"DequantizeLinear": (0,), "QuantizeLinear": (0,), "Cast": (0,), "Pow": (0, 1)}


@dataclass
class LintReport:
    """All findings for one model; truthy when there is no error (warnings allowed)."""

    trt_versions: tuple[str, ...]
    findings: list[Finding] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    def count(self, severity: str, trt_version: str | None = None) -> int:
        """Findings of ``severity`` that apply to ``trt_version`` (all versions when None)."""
        return sum(
            f.severity == severity and (trt_version is None or f.trt_version in (None, trt_version))
            for f in self.findings
        )

    def to_dict(self) -> dict:
        """JSON-ready form: per-version error/warning counts and every finding."""
        return {
            "ok": bool(self),
            "trt_versions": list(self.trt_versions),
            "counts": {
                v: {s: self.count(s, v) for s in (ERROR, WARNING, INFO)} for v in self.trt_versions
            },
            "findings": [f.__dict__ for f in self.findings],
        }


@functools.cache
def load_op_table() -> dict:
    """The bundled TensorRT ONNX operator table (``export/data/trt_onnx_ops.json``)."""
    text = resources.files("pomexport.export").joinpath("data/trt_onnx_ops.json").read_text()
    return json.loads(text)


def lint_model(
    model: onnx.ModelProto,
    trt_versions: Iterable[str] = DEFAULT_VERSIONS,
    dim_bounds: Mapping[str, tuple[int, int, int]] | None = None,
) -> LintReport:
    """Check ``model`` against TensorRT's ONNX support for each of ``trt_versions``.

    ``dim_bounds`` maps a symbolic input dim (ONNX ``dim_param``) to its optimization-profile
    range (min, opt, max); a dynamic input dim without one is a warning. The model is not
    modified; weights are not needed (load with ``load_external_data=False``).
    """
    table = load_op_table()
    versions = tuple(trt_versions)
    unknown = [v for v in versions if v not in table["versions"]]
    if unknown:
        known = ", ".join(table["versions"])
        raise ConfigError(f"unknown TensorRT version(s) {', '.join(unknown)} (known: {known})")
    report = LintReport(versions)
    view = GraphView.build(model)
    for version in versions:
        spec = table["versions"][version]
        report.findings += _check_opset(model, spec, version)
        report.findings += _check_custom_nodes(model, view, table, version)
        report.findings += _check_standard_nodes(view, spec, version)
        report.findings += _check_strongly_typed(view, table, version)
    report.findings += patterns.shape_chains(view)
    report.findings += patterns.int64_arithmetic(view)
    report.findings += patterns.unbounded_dims(model, dim_bounds or {})
    report.findings += patterns.double_tensors(view)
    report.findings += patterns.quantized_outside_qdq(view, table)
    return report


def _check_opset(model: onnx.ModelProto, spec: dict, version: str) -> list[Finding]:
    opset = next((o.version for o in model.opset_import if o.domain in _STANDARD_DOMAINS), None)
    lo, hi = spec["opset_range"]
    if opset is None or lo <= opset <= hi:
        return []
    severity = ERROR if opset < lo else WARNING
    return [
        Finding(severity, "<model>", "", f"opset {opset} is outside {lo}..{hi}", version),
    ]


def _custom_key(node: onnx.NodeProto) -> str:
    return f"{node.domain}::{node.op_type}"


def _check_custom_nodes(
    model: onnx.ModelProto, view: GraphView, table: dict, version: str
) -> list[Finding]:
    """Resolve custom-domain nodes in the parser's order (built-in, local function, plugin)."""
    spec = table["versions"][version]
    functions = {f.name: f for f in model.functions}
    findings = []
    # The stored graph, not the inlined view: inlining removed the nodes a function explains.
    for index, node in enumerate(all_nodes(model.graph)):
        if node.domain in _STANDARD_DOMAINS or node.domain == "ai.onnx.ml":
            continue
        name, key = node.name or f"{node.op_type}_{index}", _custom_key(node)
        # The parser dispatches on op_type alone: a clash with a built-in wins over everything.
        if node.op_type in spec["ops"]:
            msg = f"op_type clashes with the built-in {node.op_type}; TensorRT ignores the domain"
            findings.append(Finding(WARNING, name, key, msg, version))
        elif key in table["custom_ops"]:
            has_function = node.op_type in functions
            findings += _check_pomexport_op(node, name, key, has_function, table, version, view)
        elif node.op_type not in functions:
            msg = "custom op with no local function and no known plugin: TensorRT cannot parse it"
            findings.append(Finding(ERROR, name, key, msg, version))
        if node.op_type in functions and node.op_type not in spec["ops"]:
            findings += _check_function_call(node, name, key, functions[node.op_type])
    return [replace(f, trt_version=f.trt_version or version) for f in findings]


def _check_function_call(
    node: onnx.NodeProto, name: str, key: str, function: onnx.FunctionProto
) -> list[Finding]:
    """The parser maps node inputs to function inputs one to one (LocalFunctionImporter)."""
    if len(node.input) == len(function.input):
        return []
    msg = (
        f"{len(node.input)} inputs but its local function declares {len(function.input)}; "
        "TensorRT's parser requires the same count (pass '' for absent optional inputs)"
    )
    return [Finding(ERROR, name, key, msg)]


def _check_pomexport_op(
    node: onnx.NodeProto,
    name: str,
    key: str,
    has_function: bool,
    table: dict,
    version: str,
    view: GraphView,
) -> list[Finding]:
    """PolyMixer: dtypes (fp32 state path), and how this TensorRT version finds its kernels."""
    allowed = table["custom_ops"][key]["types"]
    findings = []
    h_type = view.dtype(node.input[0]) if node.input else None
    if h_type is not None and h_type not in allowed:
        msg = f"input h is {h_type}; supported: {', '.join(allowed)}"
        findings.append(Finding(ERROR, name, key, msg))
    for index, input_name in enumerate(node.input[2:], start=2):
        dtype = view.dtype(input_name)
        if input_name and dtype not in (None, "float32"):
            msg = f"input {index} ({input_name}) is {dtype}; the state path must stay float32"
            findings.append(Finding(ERROR, name, key, msg))
    findings += _lookup(node, name, key, has_function, table, version)
    return findings


def _lookup(
    node: onnx.NodeProto, name: str, key: str, has_function: bool, table: dict, version: str
) -> list[Finding]:
    """What this version's parser does with the node, with our plugin library loaded or not."""
    rule = LookupRule.from_table(table, table["versions"][version]["plugin_lookup"])
    ours = table["custom_ops"][key]["plugin"]["namespace"]
    attribute = next(
        (a.s.decode() for a in node.attribute if a.name == PLUGIN_NAMESPACE_ATTRIBUTE), None
    )

    def lookup(registered: tuple[str, ...]):
        return resolve(
            rule,
            domain=node.domain,
            attribute=attribute,
            has_function=has_function,
            registered=registered,
        )

    loaded = lookup((ours,))
    if has_function:
        if loaded.target == LOCAL_FUNCTION:
            msg = "inlines its local function, whether the PolyMixer plugin is loaded or not"
        else:
            msg = (
                f"runs the PolyMixer plugin (namespace {loaded.namespace!r}) when its library is "
                "loaded, else inlines its local function"
            )
        return [Finding(INFO, name, key, msg)]
    if loaded.target == PLUGIN:
        msg = f"resolved to the PolyMixer plugin in namespace {loaded.namespace!r}"
        if attribute != loaded.namespace:
            shown = attribute if attribute is not None else ""
            msg += f" through the node's domain, after a miss under plugin_namespace {shown!r}"
        return [Finding(INFO, name, key, msg + " (load libpomexport_plugins.so)")]
    tried = ", ".join(repr(n) for n in loaded.tried)
    msg = (
        f"Plugin not found: this parser looks only in namespace(s) {tried}, the PolyMixer plugin "
        f"is registered in {ours!r}; the plugin flavor must carry "
        f"{PLUGIN_NAMESPACE_ATTRIBUTE}={ours!r} (export/flavors.py writes it)"
    )
    return [Finding(ERROR, name, key, msg)]


def _data_inputs(view: GraphView, node: onnx.NodeProto) -> list[str]:
    """Inputs carrying the op's data type: those sharing the first output's type constraint."""
    present = [(i, n) for i, n in enumerate(node.input) if n]
    if node.op_type in _DATA_INPUTS:
        return [n for i, n in present if i in _DATA_INPUTS[node.op_type]]
    schema = view.schema(node)
    if schema is None or not schema.inputs:
        return [n for _, n in present]

    def type_str(i: int) -> str:
        formals = schema.inputs
        return formals[min(i, len(formals) - 1)].type_str

    out_type = schema.outputs[0].type_str if schema.outputs else None
    chosen = [n for i, n in present if type_str(i) == out_type]
    return chosen or [n for i, n in present if type_str(i) == type_str(0)]


def _check_standard_nodes(view: GraphView, spec: dict, version: str) -> list[Finding]:
    """Op support, input dtypes and the restrictions we can check, per node."""
    findings: list[Finding] = []
    restricted: set[str] = set()
    for node in view.nodes:
        if node.domain not in _STANDARD_DOMAINS and node.domain != "ai.onnx.ml":
            continue
        name, op = view.name(node), node.op_type
        entry = spec["ops"].get(op) if node.domain != "ai.onnx.ml" else None
        if entry is None or not entry["supported"]:
            why = "not in TensorRT's ONNX operator table" if entry is None else "not supported"
            findings.append(Finding(ERROR, name, op, why, version))
            continue
        for input_name in _data_inputs(view, node):
            dtype = view.dtype(input_name)
            if dtype is not None and dtype not in entry["types"]:
                msg = f"input {input_name} is {dtype}; supported: {', '.join(entry['types'])}"
                findings.append(Finding(ERROR, name, op, msg, version))
        findings += _check_restriction(view, node, entry, version, restricted)
    return findings


# "`axes` must be an initializer", "`frame_step` and `window` must be an initializer", ...
_CONSTANT_INPUTS = re.compile(
    r"`(\w+)`(?: and `(\w+)`)? must be (?:an initializer|a build-time constant|"
    r"resolvable to a constant|a constant tensor)"
)


def _check_restriction(
    view: GraphView, node: onnx.NodeProto, entry: dict, version: str, seen: set[str]
) -> list[Finding]:
    """Inputs that must be constant: checked; any other restriction: one note per op type."""
    if "omitted_axes" in entry and view.named_input(node, "axes") is None:
        shape = view.shape(node.input[0])
        if shape is None or not all(isinstance(d, int) for d in shape):
            rule = entry["omitted_axes"]
            msg = f"no `axes` on the dynamic shape {shape}; TensorRT {version}: {rule}"
            return [Finding(ERROR, view.name(node), node.op_type, msg, version)]
    text = entry.get("restrictions", "")
    if not text:
        return []
    named = [n for match in _CONSTANT_INPUTS.finditer(text) for n in match.groups() if n]
    bound = [(n, view.named_input(node, n)) for n in named]
    runtime = [f"`{n}` ({t})" for n, t in bound if t and not view.is_constant(t)]
    if runtime:
        msg = f"{', '.join(runtime)} computed at run time; TensorRT {version}: {text}"
        return [Finding(ERROR, view.name(node), node.op_type, msg, version)]
    if any(t for _, t in bound) or node.op_type in seen:
        return []
    seen.add(node.op_type)
    return [Finding(INFO, "<all>", node.op_type, f"TensorRT restriction: {text}", version)]


def _check_strongly_typed(view: GraphView, table: dict, version: str) -> list[Finding]:
    """Strongly typed networks take types from the graph: mixed float inputs need a Cast."""
    findings = []
    mixed_ok = table["strongly_typed"]["mixed_precision_ops"]
    for node in view.nodes:
        if node.domain not in _STANDARD_DOMAINS:
            continue
        inputs = _data_inputs(view, node)
        if node.op_type in mixed_ok:
            inputs = [n for n in node.input if n]
            if _version_key(version) >= _version_key(mixed_ok[node.op_type]["min_version"]):
                continue
        floats = {view.dtype(n) for n in inputs} & patterns.FLOAT_TYPES
        if len(floats) > 1:
            msg = f"mixed input types {sorted(floats)} in a strongly typed network; insert a Cast"
            findings.append(Finding(ERROR, view.name(node), node.op_type, msg, version))
    return findings


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


__all__ = [
    "DEFAULT_VERSIONS",
    "ERROR",
    "INFO",
    "WARNING",
    "Finding",
    "LintReport",
    "lint_model",
    "load_op_table",
]
