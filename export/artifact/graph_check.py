"""The manifest's model config checked against the ONNX graph it claims to describe (issue 22).

Buffers (latents, the per-layer state, the label range) are sized from ``model.config``;
the manifest is not hashed, so an edited ``width`` or ``num_classes`` would otherwise size
them wrongly (15 GB allocations, ONNX Runtime tracebacks, labels past the embedding table).
The graph is the ground truth: every non-batch axis of the step I/O must be a static dim
equal to what the config derives, the label embedding table must have ``num_classes + 1``
rows of ``width``, the patch projection ``[width, in_channels, patch, patch]``, and every
PolyMixer node the config's op attributes. Only the graph proto is read (no weights).
"""

from __future__ import annotations

from pomexport.errors import ArtifactError
from pomexport.export.artifact.contract import DOMAIN, OP_TYPE
from pomexport.models.config import PoMDiTConfig

# Initializer name prefixes (torch module paths; fp16 appends "_float16", int8 "_<node>_int8").
LABEL_TABLE = "model.label.weight"
PATCH_PROJ = "model.patch.proj.weight"
# Which config fields an axis of the step I/O comes from (for the error message).
_AXIS_FIELDS = {
    "C_in": "in_channels",
    "H": "input_size",
    "W": "input_size",
    "L": "depth",
    "C": "width*expansion(*order)",
}


def _graph_dims(value) -> list[int | str | None] | None:
    """Static dims as ints, symbolic ones as their name (None: unnamed); None: no shape."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = []
    for dim in tensor.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or None)
    return dims


def check_io_dims(name: str, model, expected: dict[str, list], symbols: dict[str, tuple]) -> None:
    """Every axis the config resolves to a number must be that static dim in the graph.

    ``expected``: tensor name -> dims from the config (ints, or ``"B"``); ``symbols``:
    tensor name -> the contract's symbolic dims (to name the config field in the error).
    """
    for value in list(model.graph.input) + list(model.graph.output):
        want = expected.get(value.name)
        if want is None:
            continue
        dims = _graph_dims(value)
        if dims is None:
            raise ArtifactError(f"{name}: {value.name} has no static shape; cannot check it")
        for axis, (have, need) in enumerate(zip(dims, want, strict=False)):
            if isinstance(need, int) and have != need:
                field = _AXIS_FIELDS.get(symbols[value.name][axis], "?")
                raise ArtifactError(
                    f"{name}: {value.name} axis {axis} is {have} in the graph but the manifest's "
                    f"model config ({field}) says {need}; refusing a config that does not "
                    "describe the graph"
                )


def _initializer(model, prefix: str):
    for tensor in model.graph.initializer:
        if tensor.name == prefix or tensor.name.startswith(prefix + "_"):
            return tensor
    return None


def check_initializers(name: str, model, cfg: PoMDiTConfig) -> None:
    """The label table and the patch projection against ``num_classes``, ``width``,
    ``in_channels`` and ``patch_size``; a class model without a label table is refused (its
    labels could not be range-checked)."""
    table = _initializer(model, LABEL_TABLE)
    if cfg.text_dim == 0:
        if table is None:
            raise ArtifactError(
                f"{name}: no label embedding table ({LABEL_TABLE}) in the graph; cannot check "
                "num_classes"
            )
        want = [cfg.num_classes + 1, cfg.width]
        if list(table.dims) != want:
            raise ArtifactError(
                f"{name}: the label table is {list(table.dims)} but the manifest's model config "
                f"(num_classes + 1, width) says {want}"
            )
    proj = _initializer(model, PATCH_PROJ)
    if proj is not None:
        p = cfg.patch_size
        want = [cfg.width, cfg.in_channels, p, p]
        if list(proj.dims) != want:
            raise ArtifactError(
                f"{name}: the patch projection is {list(proj.dims)} but the manifest's model "
                f"config (width, in_channels, patch_size x2) says {want}"
            )


def check_mixer_nodes(name: str, model, cfg: PoMDiTConfig) -> None:
    """Every PolyMixer node's variant/order/gate against the config (the op's attributes)."""
    want = {"variant": cfg.variant, "order": cfg.order, "gate": cfg.gate}
    for node in model.graph.node:
        if node.op_type != OP_TYPE or node.domain != DOMAIN:
            continue
        for attr in node.attribute:
            if attr.name not in want:
                continue
            have = attr.s.decode(errors="replace") if attr.name != "order" else attr.i
            if have != want[attr.name]:
                raise ArtifactError(
                    f"{name}: PolyMixer node {node.name!r} has {attr.name}={have!r} but the "
                    f"manifest's model config says {want[attr.name]!r}"
                )
