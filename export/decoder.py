"""Latent decoders to ONNX: fixed-shape graphs with a plain-JSON IO contract (issue 21).

:func:`export_decoder` turns a local diffusers ``save_pretrained`` folder into ONNX graphs
(:mod:`pomexport.models.decoders` holds the torch side):

- ``AutoencoderKL`` / ``AutoencoderTiny``: one graph, role ``decode``,
  ``latent [B, C, h, w] -> rgb [B, 3, H, W]``;
- ``AutoencoderKLWan``: two graphs sharing one cache layout, role ``first``
  (``latent [B, z, 1, h, w] -> frames [B, 3, 1, H, W], cache_NN_out...``) and role ``next``
  (``latent, cache_NN... -> frames [B, 3, F, H, W], cache_NN_out...``). Every cache has a
  fixed shape, so a runtime keeps two persistent buffer sets and swaps them after each call,
  exactly like the mixer state.

Shapes are static (batch and latent size fixed at export). fp16 reuses the step graph's fp16
pass (:mod:`pomexport.export.fp16`): compute in fp16, graph inputs, outputs and caches in fp32
(the pass casts at the borders), kept in fp32: the normalisations (their sums of squares
overflow first) and every tensor the overflow scan finds above half the fp16 range on the
example latents and twice them (:func:`overflow_scan`; listed in the contract).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from pomexport.errors import ConfigError, ExportError
from pomexport.export._exporter_quiet import exporter_quiet
from pomexport.export.artifact.decoder import IMAGE, WAN_STREAM
from pomexport.models.decoders import (
    FrameDecoder,
    WanFirstStep,
    WanNextStep,
    WanStream,
    decoder_from_folder,
    read_source_config,
)

log = logging.getLogger(__name__)

OPSET = 18  # the step graph's default opset (export/api.py DEFAULT_OPSET; a test checks)
PRECISIONS = ("fp32", "fp16")
RGB_RANGE = (-1.0, 1.0)
_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16"}
# Ops kept fp32 in the fp16 graph with their inputs' producers and outputs' consumers: the
# normalisations (sums of squares overflow fp16 first) and attention's softmax (its logits).
_NORM_OPS = frozenset(
    {
        "GroupNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceMean",
        "Softmax",
    }
)


@dataclass(frozen=True)
class _Graph:
    """One graph to trace: module, example inputs and the contract's I/O names."""

    module: torch.nn.Module
    args: tuple[torch.Tensor, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    frames: int


@dataclass(frozen=True)
class DecoderExport:
    """What :func:`export_decoder` wrote: graph files by role and their IO contract.

    ``frames_per_step``: RGB frames each role returns per call (``decode``: 1; Wan: ``first``
    1, ``next`` ``2 ** temporal upsamplers``). ``io_contract`` is plain JSON-able data.
    """

    source_class: str
    precision: str
    files: dict[str, Path]
    io_contract: dict
    frames_per_step: dict[str, int] = field(default_factory=dict)

    def sha256(self) -> dict[str, str]:
        """sha256 of each graph file, by role (what a manifest lists)."""
        return {role: hashlib.sha256(p.read_bytes()).hexdigest() for role, p in self.files.items()}


def _frame_graphs(decoder: FrameDecoder, latent: torch.Tensor) -> dict[str, _Graph]:
    return {"decode": _Graph(decoder.eval(), (latent,), ("latent",), ("rgb",), 1)}


def _wan_graphs(stream: WanStream, latent: torch.Tensor) -> dict[str, _Graph]:
    """``first`` and ``next``; the caches' number and shapes come from a torch first call."""
    with torch.no_grad():
        first_frames, caches = stream.decode(latent, None)
        next_frames, _ = stream.decode(latent, caches)
    ins = tuple(f"cache_{i:02d}" for i in range(len(caches)))
    outs = tuple(f"{name}_out" for name in ins)
    return {
        "first": _Graph(
            WanFirstStep(stream).eval(),
            (latent,),
            ("latent",),
            ("frames", *outs),
            first_frames.shape[2],
        ),
        "next": _Graph(
            WanNextStep(stream).eval(),
            (latent, *caches),
            ("latent", *ins),
            ("frames", *outs),
            next_frames.shape[2],
        ),
    }


def _trace(graph: _Graph, opset: int = OPSET) -> onnx.ModelProto:
    """fp32 ONNX of one graph (torch.onnx.export, dynamo), static shapes."""
    with exporter_quiet(), torch.no_grad():
        try:
            program = torch.onnx.export(
                graph.module,
                graph.args,
                dynamo=True,
                input_names=list(graph.inputs),
                output_names=list(graph.outputs),
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
        except Exception as e:  # the exporter raises many types; one line for the user
            raise ExportError(f"torch.onnx.export failed for a decoder graph: {e}") from e
    proto = program.model_proto
    _strip_metadata(proto)
    got_in = tuple(v.name for v in proto.graph.input)
    got_out = tuple(v.name for v in proto.graph.output)
    if got_in != graph.inputs or got_out != graph.outputs:
        raise ExportError(f"decoder graph I/O {got_in} -> {got_out} breaks its contract")
    return proto


def _strip_metadata(proto: onnx.ModelProto) -> None:
    """Drop the exporter's stack traces and signature: they leak local paths, change per run."""
    graph = proto.graph
    for item in (*graph.node, *graph.input, *graph.output, *graph.value_info, graph, proto):
        del item.metadata_props[:]


def fp16_keep(proto: onnx.ModelProto) -> list[str]:
    """Tensors whose producers/consumers stay fp32: the normalisations' inputs and outputs."""
    return [
        name
        for node in proto.graph.node
        if node.op_type in _NORM_OPS
        for name in (*node.input, *node.output)
        if name
    ]


def to_fp16(proto: onnx.ModelProto, keep_fp32: Iterable[str] = ()) -> onnx.ModelProto:
    """The fp16 graph: the step graph's fp16 pass, normalisations and ``keep_fp32`` in fp32."""
    from pomexport.export.fp16 import to_fp16 as fp16_pass

    keep = [*fp16_keep(proto), *keep_fp32]
    return _resize_params_fp32(fp16_pass(proto, keep_fp32=keep))


def overflow_scan(proto: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> set[str]:
    """fp32 tensors whose |max| over ``feeds`` exceeds half the fp16 range (kept in fp32).

    The fp32 graph runs on ONNX Runtime CPU with every float intermediate as an output, the
    decoder's version of :mod:`pomexport.export.ranges` (which expects a PolyMixer graph).
    In-memory, so for graphs under protobuf's 2 GB (a Wan 2.1 decoder is ~0.3 GB in fp32).
    """
    import onnx_ir as ir
    import onnxruntime as ort

    from pomexport.export.ranges import overflowing

    irm = ir.serde.deserialize_model(proto)
    seen = {v.name for v in irm.graph.outputs}
    for value in (v for node in irm.graph for v in node.outputs):
        if value.dtype == ir.DataType.FLOAT and value.name not in seen:
            irm.graph.outputs.append(value)
            seen.add(value.name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    blob = ir.serde.serialize_model(irm).SerializeToString()
    session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    absmax: dict[str, float] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            if value.size:
                absmax[name] = max(absmax.get(name, 0.0), float(np.max(np.abs(value))))
    if not all(np.isfinite(v) for v in absmax.values()):
        raise ExportError("the fp32 decoder graph produced non-finite values on its scan")
    return overflowing(absmax)


def _scan_feeds(graph: _Graph) -> list[dict[str, np.ndarray]]:
    """The example inputs, and the same with the latent doubled (headroom over N(0, 1))."""
    feed = {name: arg.numpy() for name, arg in zip(graph.inputs, graph.args, strict=True)}
    return [feed, {**feed, "latent": 2.0 * feed["latent"]}]


def _resize_params_fp32(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Give ``Resize`` its ``roi``/``scales`` back in fp32 (the spec allows no fp16 there).

    The fp16 pass converts every float input; for these two it either folded a Cast into an
    fp16 initializer (restored as an fp32 copy) or left a Cast (bypassed to its fp32 source).
    """
    inits = {t.name: t for t in proto.graph.initializer}
    casts = {n.output[0]: n for n in proto.graph.node if n.op_type == "Cast"}
    for node in proto.graph.node:
        if node.op_type != "Resize":
            continue
        for slot in (1, 2):
            name = node.input[slot] if len(node.input) > slot else ""
            if name in casts:
                node.input[slot] = casts[name].input[0]
            elif name in inits and inits[name].data_type == onnx.TensorProto.FLOAT16:
                array = onnx.numpy_helper.to_array(inits[name]).astype("float32")
                copy = onnx.numpy_helper.from_array(array, f"{name}_fp32")
                if copy.name not in inits:
                    proto.graph.initializer.append(copy)
                    inits[copy.name] = copy
                node.input[slot] = copy.name
    used = {name for node in proto.graph.node for name in node.input}
    dead = [t for t in proto.graph.initializer if t.name not in used]
    for tensor in dead:  # the fp16 copies no node reads any more
        proto.graph.initializer.remove(tensor)
    return proto


def io_spec(proto: onnx.ModelProto) -> dict[str, list[dict]]:
    """Inputs and outputs of a graph as read back from it: name, shape, dtype."""

    def entry(value: onnx.ValueInfoProto) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in tensor.shape.dim]
        return {"name": value.name, "shape": dims, "dtype": _DTYPES.get(tensor.elem_type, "?")}

    return {
        "inputs": [entry(v) for v in proto.graph.input],
        "outputs": [entry(v) for v in proto.graph.output],
    }


def _contract(config: dict, decoder, graphs: dict[str, _Graph], protos: dict, opset: int) -> dict:
    """The IO contract: plain JSON (lists, strings, numbers) a manifest can carry as is."""
    video = isinstance(decoder, WanStream)
    roles = {}
    for role, proto in protos.items():
        roles[role] = {**io_spec(proto), "frames_per_call": graphs[role].frames}
    contract = {
        "source_class": config["_class_name"],
        "kind": WAN_STREAM if video else IMAGE,
        "opset": opset,
        "latent": {
            "input": "latent",
            "layout": "B,C,1,h,w" if video else "B,C,h,w",
            **decoder.affine.to_json(),
        },
        "rgb": {
            "output": "frames" if video else "rgb",
            "layout": "B,3,F,H,W" if video else "B,3,H,W",
            "range": list(RGB_RANGE),
            "clamped": video,  # as diffusers' decode: Wan clamps, KL/Tiny do not
        },
        "graphs": roles,
    }
    if video:
        nxt = roles["next"]
        contract["state"] = {
            "pairs": [
                [i["name"], o["name"]]
                for i, o in zip(nxt["inputs"][1:], nxt["outputs"][1:], strict=True)
            ],
            "first_call": "run graph 'first' (no state inputs: history starts at zero)",
            "later_calls": "run graph 'next' with the previous call's *_out as its inputs",
        }
    return contract


def export_decoder(
    folder: str | Path,
    out_dir: str | Path,
    precision: str = "fp32",
    latent_hw: tuple[int, int] = (32, 32),
    batch: int = 1,
    opset: int = OPSET,
) -> DecoderExport:
    """Export the decoder of a local diffusers folder to ``out_dir/decoder_<role>.onnx``.

    ``latent_hw``: the latent's (h, w) the graphs are fixed to; ``batch``: B.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"decoder precision must be one of {PRECISIONS}, got {precision!r}")
    config = read_source_config(folder)
    decoder = decoder_from_folder(folder)
    channels = len(decoder.affine.scale)
    video = isinstance(decoder, WanStream)
    shape = (batch, channels, 1, *latent_hw) if video else (batch, channels, *latent_hw)
    # Seeded: the fp16 overflow scan runs on these, so the same inputs give the same bytes.
    latent = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    graphs = _wan_graphs(decoder, latent) if video else _frame_graphs(decoder, latent)
    protos = {role: _trace(graph, opset) for role, graph in graphs.items()}
    kept: dict[str, list[str]] = {}
    if precision == "fp16":
        for role, graph in graphs.items():
            kept[role] = sorted(overflow_scan(protos[role], _scan_feeds(graph)))
            protos[role] = to_fp16(protos[role], kept[role])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for role, proto in protos.items():
        files[role] = out / f"decoder_{role}.onnx"
        onnx.save_model(proto, files[role])
        log.info("decoder %s (%s): %d nodes", role, precision, len(proto.graph.node))
    contract = _contract(config, decoder, graphs, protos, opset)
    contract.update(precision=precision, fp16_overflow_fp32=kept)
    frames = {role: graph.frames for role, graph in graphs.items()}
    return DecoderExport(config["_class_name"], precision, files, contract, frames)
