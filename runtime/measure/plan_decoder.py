"""The decoder stage's rows of ``pomexport plan`` (issue 21; docs/design.md §6.2), read from
an artifact's decoder graphs (the runtime decodes stream by stream at batch 1):

- weights: the bytes of every initializer of every decoder graph (``image``: ``decode``;
  ``wan-stream``: ``first`` and ``next``, each an engine with its own copy);
- activations: the largest live set of one node, ``max`` over the graphs' nodes of the bytes
  of its non-initializer inputs and outputs (shapes from ONNX shape inference on the static
  graph; a tensor it leaves unshaped is not counted). One graph runs at a time, so this is
  not per stream; TensorRT's real figure is the engine's device memory after the build;
- I/O: the runtime's persistent buffers shared by the streams: the latent input and each
  role's RGB output (``runtime/ort_decoder.py``);
- cache (``wan-stream`` only): per stream, two sets (ping-pong) of the fixed causal-conv
  caches, the ``next`` graph's cache inputs: ``streams * 2 * sum(cache bytes)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

_DTYPE_BYTES = {1: 4, 10: 2, 11: 8, 7: 8, 6: 4, 9: 1, 3: 1, 2: 1, 16: 2}  # ONNX elem types
_IO_BYTES = {"float32": 4, "float16": 2}


@dataclass(frozen=True)
class DecoderBudget:
    """The decoder stage of one artifact for ``streams`` streams; sizes in bytes."""

    kind: str
    precision: str
    weights: int
    activations: int
    io: int
    cache_per_stream: int
    cache: int

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.io + self.cache

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def _entry_bytes(entry: dict) -> int:
    n = _IO_BYTES[entry["dtype"]]
    for d in entry["shape"]:
        n *= d
    return n


def _value_bytes(value) -> int | None:
    """Bytes of a shaped value (None: dtype or a dim unknown)."""
    tensor = value.type.tensor_type
    size = _DTYPE_BYTES.get(tensor.elem_type)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    if size is None or not tensor.HasField("shape") or None in dims:
        return None
    for d in dims:
        size *= d
    return size


def initializer_bytes(model) -> int:
    """Bytes of every initializer of ``model`` (from dims and dtype: no data is read)."""
    total = 0
    for init in model.graph.initializer:
        n = _DTYPE_BYTES.get(init.data_type, 4)
        for d in init.dims:
            n *= d
        total += n
    return total


def peak_node_bytes(model) -> int:
    """``max`` over nodes of the bytes of their non-initializer inputs and outputs."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    graph = inferred.graph
    sizes = {v.name: _value_bytes(v) for v in (*graph.input, *graph.output, *graph.value_info)}
    weights = {i.name for i in graph.initializer}
    peak = 0
    for node in graph.node:
        names = {n for n in (*node.input, *node.output) if n and n not in weights}
        peak = max(peak, sum(sizes.get(n) or 0 for n in names))
    return peak


def decoder_budget(artifact, streams: int) -> DecoderBudget | None:
    """The rows of ``artifact``'s decoder stage (a verified ``Artifact``); None without one."""
    import onnx

    spec = artifact.decoder
    if spec is None:
        return None
    weights = activations = 0
    for name in spec.files.values():
        model = onnx.load(Path(artifact.root) / name, load_external_data=False)
        weights += initializer_bytes(model)
        activations = max(activations, peak_node_bytes(model))
    first = "first" if spec.streaming else "decode"
    io = _entry_bytes(spec.graph(first)["inputs"][0])
    io += sum(_entry_bytes(spec.graph(role)["outputs"][0]) for role in spec.files)
    caches = {e["name"]: e for e in spec.graph("next")["inputs"]} if spec.streaming else {}
    per_stream = 2 * sum(_entry_bytes(caches[name]) for name, _ in spec.state_pairs)
    return DecoderBudget(
        kind=spec.kind,
        precision=spec.precision,
        weights=weights,
        activations=activations,
        io=io,
        cache_per_stream=per_stream,
        cache=streams * per_stream,
    )
