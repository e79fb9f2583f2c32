"""The names everything agrees on: the PolyMixer op and the step graph's I/O (docs/design.md §2-3).

The exporter, the ONNX schema, the TensorRT plugin's creator fields, the C++ runtime and the
tests all read these, so serialised names and parsed names cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

# -- the fused op -----------------------------------------------------------------------
DOMAIN = "pomexport"
OP_TYPE = "PolyMixer"
OP_VERSION = 1
TORCH_OP = "pomexport::poly_mixer"
PLUGIN_NAME = "PolyMixer"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "pomexport"
# The node attribute TensorRT's ONNX parser takes the plugin namespace from (default ""): the
# plugin flavor sets it to PLUGIN_NAMESPACE on every PolyMixer node, the portable flavor never
# (export/flavors.py; why: runtime/plugin/README.md "Loading"). Not an op attribute: the parser
# passes a plugin only the fields its creator lists, so it never reaches the plugin.
PLUGIN_NAMESPACE_ATTRIBUTE = "plugin_namespace"

OP_INPUTS = ("h", "g", "state", "count", "coeff")  # coeff only for variant "powers"
OP_OUTPUTS = ("y", "state_out")


@dataclass(frozen=True)
class MixerAttrs:
    """The PolyMixer op's attributes (docs/design.md §2), validated on construction.

    The field order is the torch op's argument order after the tensors
    (``poly_mixer(h, g, state, count, coeff, variant, order, gate, sel_heads)``), so
    ``MixerAttrs(*args)`` and :meth:`op_args` convert between the two. ``sel_heads`` 0 or 1 is
    one gate per channel; more is one gate per selection head (``powers`` models).
    """

    variant: str = "moments"
    order: int = 2
    gate: str = "sigmoid"
    sel_heads: int = 0

    def __post_init__(self) -> None:
        from pomexport.models.config import GATES, VARIANTS  # torch-free; lazy: no import cycle

        if self.variant not in VARIANTS:
            raise ValueError(f"unknown PoM variant {self.variant!r}; expected one of {VARIANTS}")
        if self.gate not in GATES:
            raise ValueError(f"unknown gate {self.gate!r}; expected one of {GATES}")
        for name in ("order", "sel_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"PolyMixer {name} must be an int, got {value!r}")
        if self.order < 1 or self.sel_heads < 0:
            raise ValueError(f"PolyMixer order >= 1 and sel_heads >= 0, got {self}")

    @property
    def heads(self) -> int:
        """Gates per token position: ``sel_heads``, or 1 for one gate per channel."""
        return max(self.sel_heads, 1)

    def gate_width(self, channels: int) -> int:
        """Width of ``g`` for a state of ``channels``: the heads, or one gate per channel."""
        return self.sel_heads if self.sel_heads > 1 else channels

    def op_args(self) -> tuple[str, int, str, int]:
        """The torch op's attribute arguments, in its order."""
        return (self.variant, self.order, self.gate, self.sel_heads)

    def to_onnx(self) -> dict[str, str | int]:
        """The ``pomexport::PolyMixer`` node's attributes (name -> value)."""
        return dict(zip(OP_ATTRIBUTES, self.op_args(), strict=True))

    @classmethod
    def from_config(cls, cfg: object) -> MixerAttrs:
        """The attributes of a model config (``PoMDiTConfig``: variant, order, gate, sel_heads)."""
        return cls(**{name: getattr(cfg, name) for name in OP_ATTRIBUTES})

    @classmethod
    def from_onnx(cls, attributes: Mapping[str, object]) -> MixerAttrs:
        """From a node's attributes (name -> value; bytes are decoded, missing ones default,
        attributes that are not the op's, such as ``plugin_namespace``, are ignored)."""
        values = {}
        for name in OP_ATTRIBUTES:
            if name in attributes:
                value = attributes[name]
                values[name] = value.decode() if isinstance(value, bytes) else value
        return cls(**values)


# attribute name -> (python type, default), in the op's order
OP_ATTRIBUTES: dict[str, tuple[type, object]] = {
    f.name: (type(f.default), f.default) for f in fields(MixerAttrs)
}


# -- the step graph ---------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, symbolic shape, dtype ("model" = model precision)."""

    name: str
    shape: tuple[str, ...]
    dtype: str
    meaning: str


STEP_INPUTS = (
    TensorSpec("x_t", ("B", "C_in", "H", "W"), "model", "noisy latent of the current frame"),
    TensorSpec("t", ("B",), "float32", "flow time in [0, 1] (1 = noise)"),
    TensorSpec("label", ("B",), "int64", "class label (num_classes = unconditional)"),
    TensorSpec("frame_index", ("B",), "int64", "temporal position of the frame"),
    TensorSpec("state", ("L", "B", "C"), "float32", "per-layer committed sums"),
    TensorSpec("count", ("B",), "float32", "committed tokens per stream"),
)
STEP_OUTPUTS = (
    TensorSpec("v", ("B", "C_in", "H", "W"), "model", "predicted velocity"),
    TensorSpec("state_out", ("L", "B", "C"), "float32", "state + this frame's per-layer sums"),
)
TEXT_INPUT = TensorSpec("text_emb", ("B", "L_txt", "D_txt"), "model", "text embeddings")
