"""The fused op: fp32 accumulation, formulas of both variants, autograd."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.poly_mixer_op import poly_mixer, poly_mixer_reference


def _inputs(variant, b=2, n=16, c=12, k=3, heads=0, dtype=torch.float32, scale=1.0):
    h = (torch.randn(b, n, c) * scale).to(dtype)
    g = torch.randn(b, n, heads if heads > 1 else c).to(dtype)
    state = torch.randn(b, c).abs()
    count = torch.full((b,), 10.0)
    coeff = torch.randn(c, k) if variant == "powers" else None
    return h, g, state, count, coeff


def test_moments_formula_by_hand():
    h, g, state, count, _ = _inputs("moments", c=6, k=3)
    y, s = poly_mixer(h, g, state, count, None, "moments", 3, "sigmoid", 0)
    a1, a2, a3 = F.gelu(h).chunk(3, dim=-1)
    p = torch.cat([a1, a1 * a2, a1 * a2 * a3], dim=-1)
    s_ref = state + p.sum(1)
    torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(y, torch.sigmoid(g) * (s_ref / (count + 16)[:, None])[:, None])


def test_powers_formula_by_hand_with_selection_heads():
    h, g, state, count, coeff = _inputs("powers", c=8, k=3, heads=2)
    y, s = poly_mixer(h, g, state, count, coeff, "powers", 3, "hardsigmoid", 2)
    a = F.leaky_relu(h, 0.01).clamp(-0.1, 6.0)
    p = coeff[:, 0] * a + coeff[:, 1] * a**2 + coeff[:, 2] * a**3
    s_ref = state + p.sum(1)
    mean = (s_ref / (count + 16)[:, None]).reshape(2, 1, 2, 4)
    y_ref = (F.hardsigmoid(g).unsqueeze(-1) * mean).reshape(2, 16, 8)
    torch.testing.assert_close(s, s_ref)
    torch.testing.assert_close(y, y_ref)


@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_fp16_inputs_accumulate_in_fp32(variant):
    """4096 tokens of large degree-4 features: the sum overflows fp16, not our state."""
    torch.manual_seed(0)
    c, k, n = 16, 4, 4096
    h = (torch.rand(1, n, c) * 5.0 + 4.0).half()  # gelu(h)^4 ~ 6e3 per token; x4096 > 65504
    g = torch.randn(1, n, c).half()
    state, count = torch.zeros(1, c), torch.zeros(1)
    coeff = torch.rand(c, k) + 1.0 if variant == "powers" else None
    y, s = poly_mixer(h, g, state, count, coeff, variant, k, "sigmoid", 0)
    assert s.dtype == torch.float32 and y.dtype == torch.float16
    _, s64 = poly_mixer_reference(
        h.double(),
        g.double(),
        state.double(),
        count.double(),
        None if coeff is None else coeff.double(),
        MixerAttrs(variant, k, "sigmoid", 0),
    )
    assert torch.isfinite(s).all()
    assert s.abs().max() > 65504  # the test is meaningful: fp16 would have overflowed
    assert ((s.double() - s64).abs() / s64.abs()).max() <= 1e-3


@pytest.mark.parametrize("variant", ["moments", "powers"])
def test_autograd_matches_reference(variant):
    h, g, state, count, coeff = _inputs(variant)
    leaves = [t.clone().requires_grad_(True) for t in (h, g, state)]
    coeff_leaf = None if coeff is None else coeff.clone().requires_grad_(True)
    gate = "sigmoid" if variant == "moments" else "hardsigmoid"
    y, s = poly_mixer(*leaves, count, coeff_leaf, variant, 3, gate, 0)
    (y.square().sum() + s.sum()).backward()
    ref = [t.clone().requires_grad_(True) for t in (h, g, state)]
    ref_coeff = None if coeff is None else coeff.clone().requires_grad_(True)
    y2, s2 = poly_mixer_reference(*ref, count, ref_coeff, MixerAttrs(variant, 3, gate, 0))
    (y2.square().sum() + s2.sum()).backward()
    for a, b in zip(leaves + [coeff_leaf], ref + [ref_coeff], strict=True):
        if a is not None:
            torch.testing.assert_close(a.grad, b.grad)


def test_unknown_variant_is_a_clear_error():
    h, g, state, count, _ = _inputs("moments")
    with pytest.raises(ValueError, match="unknown PoM variant"):
        poly_mixer_reference(h, g, state, count, None, MixerAttrs("cubes", 2, "sigmoid", 0))
