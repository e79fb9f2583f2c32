"""torch -> ONNX: ``PoMDiT.step`` as the step graph of docs/design.md §3 (plugin flavor, fp32).

``torch.onnx.export(dynamo=True)`` traces the step; its ``custom_translation_table`` maps
``torch.ops.pomexport.poly_mixer`` to one ``pomexport::PolyMixer`` node (onnxscript call
through ``Opset("pomexport", 1)``). The exporter would inline an onnxscript *function*, so
the node is emitted as an opaque custom op here and the portable flavor's FunctionProto is
appended afterwards (:mod:`pomexport.export.flavors`). I/O names, dtypes and the symbolic
batch ``B`` are checked against ``export/artifact/contract.py`` before the graph is returned.
"""

from __future__ import annotations

import logging

import onnx_ir as ir
import torch
from onnxscript import opset18 as op
from onnxscript.values import Opset

from pomexport.errors import ExportError
from pomexport.export._exporter_quiet import exporter_quiet
from pomexport.export.artifact.contract import (
    DOMAIN,
    OP_TYPE,
    OP_VERSION,
    STEP_INPUTS,
    STEP_OUTPUTS,
    TEXT_INPUT,
    MixerAttrs,
)
from pomexport.export.schema import register_schema
from pomexport.models.pom_dit import PoMDiT

log = logging.getLogger(__name__)

_POM = Opset(DOMAIN, OP_VERSION)
_IR_DTYPES = {"float32": ir.DataType.FLOAT, "int64": ir.DataType.INT64}
_TEXT_TOKENS = 8  # example text length for tracing; the axis stays dynamic


def _polymixer_node(h, g, state, count, coeff, *attrs):
    """Translation of ``pomexport::poly_mixer``: one ``pomexport::PolyMixer`` node."""
    inputs = (h, g, state, count) if coeff is None else (h, g, state, count, coeff)
    return getattr(_POM, OP_TYPE)(*inputs, **MixerAttrs(*attrs).to_onnx(), _outputs=2)


def _gelu(x, approximate: str = "none"):
    """Translation of ``aten::gelu``: the exporter's own decomposition (torchlib's), with the
    ``0.5`` multiplying ``x`` first, ``(x * 0.5) * (1 + erf | tanh(...))`` instead of
    ``x * (0.5 * (1 + ...))`` — exactly equal (a power of two), and the form ONNX Runtime's
    ``GeluFusion``/``FastGeluFusion`` turn into one ``Gelu``/``FastGelu`` kernel (issue 24;
    its ``gelu_fusion.cc``, ``fast_gelu_fusion.cc``). TensorRT runs the same standard ops."""

    def const(value: float):
        return ir.tensor(value, dtype=x.dtype)

    if approximate == "tanh":
        inner = op.Add(x, op.Mul(const(0.044715), op.Pow(x, const(3))))
        inner = op.Tanh(op.Mul(const(0.7978845608028654), inner))
    else:
        inner = op.Erf(op.Div(x, const(1.4142135623730951)))
    return op.Mul(op.Mul(x, const(0.5)), op.Add(inner, const(1)))


class StepModule(torch.nn.Module):
    """``PoMDiT.step`` with the contract's argument names, as ``torch.onnx.export`` wants."""

    def __init__(self, model: PoMDiT) -> None:
        super().__init__()
        self.model = model

    def forward(self, x_t, t, cond, frame_index, state, count):
        return self.model.step(x_t, t, cond, frame_index, state, count)


def input_names(model: PoMDiT) -> list[str]:
    """The step graph's input names (``text_emb`` replaces ``label`` for text models)."""
    names = [spec.name for spec in STEP_INPUTS]
    if model.cfg.text_dim:
        names[names.index("label")] = TEXT_INPUT.name
    return names


def example_inputs(model: PoMDiT, batch: int) -> tuple[torch.Tensor, ...]:
    """Random step inputs of the right shapes and dtypes (for tracing and tests)."""
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
    t = torch.rand(batch, generator=gen)
    if cfg.text_dim:
        cond = torch.randn(batch, _TEXT_TOKENS, cfg.text_dim, generator=gen)
    else:
        cond = torch.randint(0, cfg.num_classes + 1, (batch,), generator=gen)
    frame = torch.randint(0, 16, (batch,), generator=gen)
    state = torch.randn(cfg.depth, batch, cfg.state_width, generator=gen)
    count = torch.full((batch,), float(cfg.tokens_per_frame))
    return x, t, cond, frame, state, count


def _dynamic_shapes(model: PoMDiT, batch: tuple[int, int, int]) -> tuple[dict, ...]:
    b = torch.export.Dim("B", min=batch[0], max=batch[2])
    cond = {0: b, 1: torch.export.Dim("L_txt", min=1, max=4096)} if model.cfg.text_dim else {0: b}
    return ({0: b}, {0: b}, cond, {0: b}, {1: b}, {0: b})


def _strip_metadata(model: ir.Model) -> None:
    """Drop the exporter's per-node stack traces: they leak local paths and change per run."""
    for node in model.graph:
        node.metadata_props.clear()
    model.graph.metadata_props.clear()


def _check_contract(model: ir.Model, names: list[str]) -> None:
    """Graph I/O names, fixed dtypes and the batch symbol must match contract.py."""
    got_in = [i.name for i in model.graph.inputs]
    got_out = [o.name for o in model.graph.outputs]
    want_out = [spec.name for spec in STEP_OUTPUTS]
    if got_in != names or got_out != want_out:
        raise ExportError(f"step graph I/O {got_in} -> {got_out} breaks the contract")
    for value, spec in zip(
        [*model.graph.inputs, *model.graph.outputs], STEP_INPUTS + STEP_OUTPUTS, strict=True
    ):
        want = _IR_DTYPES.get(spec.dtype, ir.DataType.FLOAT)
        if value.name != TEXT_INPUT.name and value.dtype != want:
            raise ExportError(f"step graph {value.name}: dtype is not {spec.dtype}")


def export_step(model: PoMDiT, opset: int, batch: tuple[int, int, int]) -> ir.Model:
    """The fp32 step graph with a bare ``pomexport::PolyMixer`` node (no local function), in
    the exporter's own graph form (``onnx_ir``): every later pass edits it, one save writes it."""
    register_schema()
    names = input_names(model)
    example = example_inputs(model, max(2, min(batch[1], batch[2])))
    table = {
        torch.ops.pomexport.poly_mixer.default: _polymixer_node,
        torch.ops.aten.gelu.default: _gelu,
    }
    with exporter_quiet(), torch.no_grad():
        try:
            program = torch.onnx.export(
                StepModule(model.eval()),
                example,
                dynamo=True,
                custom_translation_table=table,
                input_names=names,
                output_names=[spec.name for spec in STEP_OUTPUTS],
                dynamic_shapes=_dynamic_shapes(model, batch),
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
        except Exception as e:  # the exporter raises many types; one line for the user
            raise ExportError(f"torch.onnx.export failed for the step graph: {e}") from e
    graph = program.model
    _strip_metadata(graph)
    _check_contract(graph, names)
    log.info("exported step graph: %d nodes", len(graph.graph))
    return graph
