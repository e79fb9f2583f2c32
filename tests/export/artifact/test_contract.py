"""MixerAttrs: the PolyMixer op's attributes as one validated value (issue 19)."""

from __future__ import annotations

import pytest

from pomexport.export.artifact.contract import OP_ATTRIBUTES, MixerAttrs
from pomexport.models.config import PoMDiTConfig


def test_op_attributes_follow_the_fields():
    """Names, order, types and defaults of the op's attributes are MixerAttrs' fields."""
    assert OP_ATTRIBUTES == {
        "variant": (str, "moments"),
        "order": (int, 2),
        "gate": (str, "sigmoid"),
        "sel_heads": (int, 0),
    }
    assert MixerAttrs().to_onnx() == {name: default for name, (_, default) in OP_ATTRIBUTES.items()}


def test_onnx_attributes_round_trip():
    attrs = MixerAttrs("powers", 3, "hardsigmoid", 4)
    assert MixerAttrs.from_onnx(attrs.to_onnx()) == attrs
    # as onnx.helper.get_attribute_value reads a node: bytes; plugin_namespace is not the op's
    node = {"variant": b"powers", "order": 3, "gate": b"hardsigmoid", "plugin_namespace": b"x"}
    assert MixerAttrs.from_onnx(node) == MixerAttrs("powers", 3, "hardsigmoid", 0)
    assert MixerAttrs(*attrs.op_args()) == attrs


def test_from_config():
    cfg = PoMDiTConfig(variant="powers", gate="hardsigmoid", order=3, sel_heads=4, width=16)
    attrs = MixerAttrs.from_config(cfg)
    assert attrs == MixerAttrs("powers", 3, "hardsigmoid", 4)
    assert attrs.heads == 4 and attrs.gate_width(cfg.state_width) == cfg.gate_width
    assert MixerAttrs(sel_heads=1).heads == 1 and MixerAttrs(sel_heads=1).gate_width(12) == 12


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "cubes"}, "unknown PoM variant"),
        ({"gate": "relu"}, "unknown gate"),
        ({"order": 0}, "order >= 1"),
        ({"sel_heads": -1}, "sel_heads >= 0"),
        ({"order": 2.0}, "order must be an int"),
        ({"sel_heads": True}, "sel_heads must be an int"),
    ],
)
def test_invalid_attributes_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixerAttrs(**kwargs)
