"""Where Q/DQ goes (docs/design.md §4): the inputs of MatMul/Gemm/Conv on the token path only.

A GEMM/conv is a target when its weight is a constant and its activation input is computed
from ``x_t`` (the token path). Left in float, with the reason recorded:

- the conditioning path (timestep and frame sinusoid embeddings, label embedding, adaLN):
  values that do not depend on ``x_t``. They are (B, D) rows, cheap, and the sinusoids are
  exactly what must stay exact;
- GEMMs reading a LayerNormalization output directly (the statistics stay unquantized);
- the patch embedding, which reads the input latent ``x_t`` itself: under 0.1 % of the
  FLOPs, and the most sensitive layer of the trained tiny model (its input is the noise);
- the PolyMixer's ``h`` projection (``W_h``, into ``P(h)``): its error is raised to the
  polynomial order and summed into the state that every later frame reads. Measured on the
  bundled 8,000-step model (8 clips x 16 frames vs fp32): 23.8 dB PSNR with it int8, 27.3 dB
  kept float; keeping the gate projections (23.0), the MLP fc1 (22.6), fc2 (24.5) or the
  final layer (23.4) float instead did not help;
- the GEMMs of the first PoM block (its gate projection and MLP), when there are two blocks
  or more. On the 18,000-step model, whose frames follow the object across frames, a pixel
  of position error in frame 1 is carried by every later frame: int8 vs fp32 clip PSNR was
  21.2 dB (frame 1 28.8, then ~21) with only the rules above, 37.0 dB with block 0 float
  (frames 2-16 at 42-47 dB: the trajectories stay locked). Keeping block 1, 2 or 3 float
  instead gave 23.3, 23.2, 21.2 dB; the final layer 23.8 dB.

``proj_out`` (``W_o``), which reads the mixer's token output ``y``, is a target (issue 24): a
Q/DQ pair on ``y`` sits after the op, so ``state``, ``count``, ``state_out`` and the op's own
fp32 sum are untouched. Float until then, it held the S/2 int8 step at about 1.55x fp32; int8,
about 1.85x (ONNX Runtime CPU, 1 thread), with the bundled model's int8 streams following fp32
as before (``calibration/README.md`` has the measurements). The first block's stays float with
the rest of that block.

The PolyMixer's ``h``, ``g``, ``state``, ``count`` inputs and its ``state_out`` output are never
quantized: ``state``/``count`` are never MatMul inputs, ``h`` and ``g`` are GEMM outputs; the
lint test reads the graph to prove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_ir as ir

from pomexport.export.artifact.contract import DOMAIN, OP_TYPE

QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
TOKEN_INPUT = "x_t"
_SHAPE_OPS = frozenset({"Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose", "Identity"})


@dataclass(frozen=True)
class QuantTarget:
    """One GEMM/conv to quantize: its activation input (slot 0) and constant weight (slot 1)."""

    node: str
    op_type: str
    activation: str
    weight: str
    axis: int  # output-channel axis of the weight
    out_channels: int


def _is_mixer(node: ir.Node | None) -> bool:
    return node is not None and node.domain == DOMAIN and node.op_type == OP_TYPE


def token_path(graph: ir.Graph) -> set[str]:
    """Names of every value computed (transitively) from the graph input ``x_t``."""
    stack = [v for v in graph.inputs if v.name == TOKEN_INPUT]
    seen = {v.name for v in stack}
    while stack:
        for use in stack.pop().uses():
            for out in use.node.outputs:
                if out.name not in seen:
                    seen.add(out.name)
                    stack.append(out)
    return seen


def _weight_axis(node: ir.Node, weight: ir.Value) -> int | None:
    rank = len(weight.shape) if weight.shape is not None else 0
    if node.op_type == "Conv":
        return 0 if rank >= 3 else None
    if rank != 2:
        return None
    if node.op_type == "Gemm":
        attrs = node.attributes
        if attrs.get("transA") is not None and attrs["transA"].value:
            return None
        trans_b = attrs.get("transB") is not None and attrs["transB"].value
        return 0 if trans_b else 1
    return 1


def reads_input_latent(value: ir.Value | None) -> bool:
    """True when ``value`` is ``x_t`` up to shape-only ops (the patch embedding's input)."""
    while value is not None:
        if value.is_graph_input():
            return value.name == TOKEN_INPUT
        producer = value.producer()
        if producer is None or producer.op_type not in _SHAPE_OPS:
            return False
        value = producer.inputs[0]
    return False


def mixer_input_slot(node: ir.Node) -> int | None:
    """The PolyMixer input slot ``node``'s output feeds (0 ``h``, 1 ``g``), directly or
    through its bias Add; None when it feeds no mixer."""
    value = node.outputs[0]
    for _ in range(2):
        uses = list(value.uses())
        slots = [use.idx for use in uses if _is_mixer(use.node)]
        if slots:
            return slots[0]
        adds = [use.node for use in uses if use.node.op_type == "Add"]
        if len(uses) != 1 or len(adds) != 1:
            return None
        value = adds[0].outputs[0]
    return None


def _exclusion(node: ir.Node, tokens: set[str], first_block: bool) -> str | None:
    """Why ``node`` stays in float, or None when it is a target."""
    activation, weight = node.inputs[0], node.inputs[1] if len(node.inputs) > 1 else None
    if weight is None or weight.const_value is None:
        return "weight is not a constant"
    if _weight_axis(node, weight) is None:
        return "unsupported weight layout"
    if activation is None or activation.name not in tokens:
        return "conditioning path (timestep/frame/label embedding, adaLN)"
    if reads_input_latent(activation):
        return "patch embedding: reads the input latent x_t (tiny FLOPs, most sensitive)"
    producer = activation.producer()
    if producer is not None and producer.op_type == "LayerNormalization":
        return "reads LayerNormalization directly"
    if mixer_input_slot(node) == 0:
        return "PolyMixer h projection (its error is raised to the order and summed into the state)"
    if first_block:
        return "first PoM block (its state places the object every later block and frame reads)"
    return None


def find_targets(model: ir.Model) -> tuple[list[QuantTarget], dict[str, str]]:
    """Targets in graph order, and every other GEMM/conv with the reason it is excluded."""
    graph = model.graph
    tokens = token_path(graph)
    mixers = sum(1 for node in graph if _is_mixer(node))
    seen_mixers = 0
    targets, excluded = [], {}
    for node in graph:
        seen_mixers += _is_mixer(node)
        if node.op_type not in QUANTIZED_OPS or node.domain not in ("", "ai.onnx"):
            continue
        # Graph order is topological: the first block's GEMMs are the ones before the first
        # mixer and those between the first two that do not feed the second (its g, h).
        first_block = mixers > 1 and (
            seen_mixers == 0 or (seen_mixers == 1 and mixer_input_slot(node) is None)
        )
        reason = _exclusion(node, tokens, first_block)
        if reason:
            excluded[node.name] = reason
            continue
        weight = node.inputs[1]
        axis = _weight_axis(node, weight)
        channels = int(weight.shape[axis])
        targets.append(
            QuantTarget(node.name, node.op_type, node.inputs[0].name, weight.name, axis, channels)
        )
    return targets, excluded


def find_targets_proto(model: onnx.ModelProto) -> tuple[list[QuantTarget], dict[str, str]]:
    """:func:`find_targets` on an ONNX proto (not modified)."""
    return find_targets(ir.serde.deserialize_model(model))
