"""The names everything agrees on: the PolyMixer op and the step graph's I/O (docs/design.md §2-3).

The exporter, the ONNX schema, the TensorRT plugin's creator fields, the C++ runtime and the
tests all read these, so serialised names and parsed names cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

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
# attribute name -> (python type, default)
OP_ATTRIBUTES: dict[str, tuple[type, object]] = {
    "variant": (str, "moments"),
    "order": (int, 2),
    "gate": (str, "sigmoid"),
    "sel_heads": (int, 0),
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
