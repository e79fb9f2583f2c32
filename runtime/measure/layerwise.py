"""Layerwise comparison: the first layer where the portable ONNX leaves the torch reference.

Intermediate tensors of ``model.onnx`` are marked as graph outputs and compared, in the torch
model's execution order, with what forward hooks on the matching ``nn.Module`` s return for
the same step inputs. The first layer whose output is not finite, or whose relative error
(``max|a-r| / max|r|``) exceeds ``layer_rel``, is where the artifact goes wrong.

Module <-> tensor map (robust to the exporter's generated names ``val_57``, ``linear_4``):
- parameters keep their module path as initializer names (``model.blocks.2.mixer.proj_out.bias``,
  ``..._float16`` after the fp16 pass), so the node consuming ``<module>.bias`` (Add, Gemm,
  Conv) or ``<module>.weight`` (Conv, Gather, Gemm) yields ``<module>``'s output;
- the k-th ``pomexport::PolyMixer`` node is ``blocks.k.mixer``: its inputs are the outputs of
  ``proj_h``/``proj_g`` (bias-free in the ``powers`` variant, so not found by name), output 0
  is the fused op's ``y`` (torch: the input of ``proj_out``; reported as
  ``blocks.k.mixer.poly_mixer``) and output 1 the layer's ``state_out``.

Polygraphy is not used: its ``mark all`` would mark every tensor and its comparator matches
outputs by ONNX tensor name between two ONNX/TensorRT runners, while one side here is a torch
module tree with no tensor names. The work is the module <-> tensor map above; marking the
mapped tensors as outputs is a few lines of ``onnx``, and the dependency is not worth it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pomexport.export.artifact.contract import DOMAIN, OP_TYPE
from pomexport.models.pom_dit import PoMDiT
from pomexport.runtime.measure.compare import OutputError, Tolerance, output_error

logger = logging.getLogger(__name__)

__all__ = ["LayerwiseResult", "first_divergence", "layer_map"]

POLY = "poly_mixer"  # suffix of the pseudo-layer holding the fused op's y
_PARAM = re.compile(r"^(?:model\.)?(?P<module>.+)\.(?P<kind>weight|bias)(?:_[A-Za-z0-9]+)*$")
_BIAS_OPS = {"Add", "Gemm", "Conv"}
_WEIGHT_OPS = {"Conv", "Gather", "Gemm"}
_PASS_THROUGH = {"Cast", "DequantizeLinear", "Identity"}


@dataclass(frozen=True)
class LayerwiseResult:
    """Per-layer errors in execution order and the first layer that fails (None: none)."""

    layers: list[OutputError]
    first_failure: str | None
    status: str  # "nan", "error" or "ok"
    unmapped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.first_failure is None

    def to_dict(self) -> dict:
        return {
            "first_failure": self.first_failure,
            "status": self.status,
            "layers": [e.to_dict() for e in self.layers],
            "unmapped": self.unmapped,
        }


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _param_nodes(name: str, consumers: dict[str, list]) -> list:
    """Nodes using initializer ``name``, looking through casts and dequantization."""
    found, todo = [], list(consumers.get(name, []))
    while todo:
        node = todo.pop()
        if node.op_type in _PASS_THROUGH:
            todo.extend(consumers.get(node.output[0], []))
        else:
            found.append(node)
    return found


def layer_map(onnx_model) -> dict[str, tuple[str, int]]:
    """``{torch layer name: (ONNX tensor name, index of the torch module output)}``."""
    graph = onnx_model.graph
    consumers = _consumers(graph)
    mapping: dict[str, tuple[str, int]] = {}
    for init in graph.initializer:
        match = _PARAM.match(init.name)
        if not match:
            continue
        ops = _BIAS_OPS if match["kind"] == "bias" else _WEIGHT_OPS
        nodes = [n for n in _param_nodes(init.name, consumers) if n.op_type in ops]
        if len(nodes) == 1:
            mapping[match["module"]] = (nodes[0].output[0], 0)
    mixers = [n for n in graph.node if n.op_type == OP_TYPE and n.domain == DOMAIN]
    for k, node in enumerate(mixers):
        prefix = f"blocks.{k}.mixer"
        mapping.setdefault(f"{prefix}.proj_h", (node.input[0], 0))
        mapping.setdefault(f"{prefix}.proj_g", (node.input[1], 0))
        mapping[f"{prefix}.{POLY}"] = (node.output[0], 0)
        mapping[prefix] = (node.output[1], 1)
    return mapping


def _as_numpy(value) -> np.ndarray:
    if isinstance(value, tuple | list):
        value = value[0]
    return value.detach().float().cpu().numpy()


def capture_torch(model: PoMDiT, feeds: dict[str, np.ndarray], names) -> dict[str, np.ndarray]:
    """Outputs of the named modules for one ``step`` on ``feeds``, in execution order."""
    wanted = set(names)
    captured: dict[str, np.ndarray] = {}
    handles = []
    modules = dict(model.named_modules())

    def post(name: str, index: int):
        def hook(_module, _args, output):
            out = output[index] if isinstance(output, tuple) else output
            captured[name] = _as_numpy(out)

        return hook

    def pre(name: str):
        def hook(_module, args):
            captured[name] = _as_numpy(args[0])

        return hook

    for name, (_, index) in names.items():
        if name.endswith(f".{POLY}"):
            owner = modules.get(name.removesuffix(POLY) + "proj_out")
            if owner is not None:
                handles.append(owner.register_forward_pre_hook(pre(name)))
        elif name in modules and name in wanted:
            handles.append(modules[name].register_forward_hook(post(name, index)))
    try:
        with torch.inference_mode():
            model.step(*(torch.from_numpy(np.ascontiguousarray(feeds[k])) for k in _TORCH_ARGS))
    finally:
        for handle in handles:
            handle.remove()
    return captured


_TORCH_ARGS = ("x_t", "t", "label", "frame_index", "state", "count")
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def run_marked(onnx_path: str | Path, feeds: dict[str, np.ndarray], tensors: list[str]) -> dict:
    """Run ``onnx_path`` on ONNX Runtime's CPU EP with ``tensors`` marked as extra outputs."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(onnx_path))
    present = {o.name for o in proto.graph.output}
    for name in tensors:
        if name not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    inputs = {}
    for spec in session.get_inputs():
        dtype = _ORT_TYPES.get(spec.type)
        value = feeds[spec.name]
        inputs[spec.name] = value.astype(dtype) if dtype is not None else value
    values = session.run(tensors, inputs)
    return dict(zip(tensors, values, strict=True))


def first_divergence(
    model: PoMDiT,
    onnx_path: str | Path,
    feeds: dict[str, np.ndarray],
    layer_rel: float,
) -> LayerwiseResult:
    """Compare every mapped layer of ``onnx_path`` with ``model`` on one step's ``feeds``.

    ``feeds``: ``x_t, t, label, frame_index, state, count`` as numpy arrays (fp32 for x_t;
    cast to the graph's dtype here). Layers are visited in torch execution order.
    """
    import onnx

    names = layer_map(onnx.load(str(onnx_path), load_external_data=False))
    reference = capture_torch(model, feeds, names)
    unmapped = sorted(set(names) - set(reference))
    order = [n for n in reference if n in names]
    actual = run_marked(onnx_path, feeds, [names[n][0] for n in order])
    tol = Tolerance(rel=layer_rel)
    layers = []
    for name in order:
        got, ref = actual[names[name][0]], reference[name]
        if got.size != ref.size:
            unmapped.append(f"{name} (ONNX {got.shape} vs torch {ref.shape})")
            continue
        layers.append(output_error(name, got, ref, tol))
    first = next((e for e in layers if not e), None)
    status = "ok" if first is None else ("nan" if first.is_nan else "error")
    name = None if first is None else first.name
    logger.info("layerwise: %d layers compared, first failure: %s", len(layers), name)
    return LayerwiseResult(layers, name, status, unmapped)
