"""Importing official-pom and HoMM named weights reproduces those codebases' formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pomexport.errors import ArtifactError
from pomexport.models.importers import import_mixer, import_mixers


def _run(mixer, x):
    n = x.shape[1]
    zeros = torch.zeros(x.shape[0], mixer.proj_h.out_features)
    y, _ = mixer(x, zeros, torch.zeros(x.shape[0]))
    return y, n


def homm_formula(sd, x, order):
    """HoMM: gelu(ho_proj x) chunks, running products, token mean, sigmoid(se_proj x) gate."""
    h = F.gelu(x @ sd["ho_proj.weight"].T + sd["ho_proj.bias"])
    chunks = list(h.chunk(order, dim=-1))
    for i in range(1, order):
        chunks[i] = chunks[i] * chunks[i - 1]
    h = torch.cat(chunks, dim=-1).mean(dim=1, keepdim=True)
    s = torch.sigmoid(x @ sd["se_proj.weight"].T + sd["se_proj.bias"])
    return (s * h) @ sd["ag_proj.weight"].T + sd["ag_proj.bias"]


def pom_formula(sd, x, order, heads):
    """Official pom: clamped leaky-relu powers with po_coeff, hardsigmoid head gates."""
    a = F.leaky_relu(x @ sd["qc_proj.weight"].T, 0.01).clamp(-0.1, 6.0)
    p = sum(sd["po_coeff"][:, j] * a ** (j + 1) for j in range(order))
    h = p.mean(dim=1, keepdim=True)
    s = F.hardsigmoid(x @ sd["se_proj.weight"].T + sd["se_bias"])
    b, n, c = x.shape[0], x.shape[1], h.shape[-1]
    y = (s.unsqueeze(-1) * h.reshape(b, 1, heads, c // heads)).reshape(b, n, c)
    return y @ sd["ag_proj.weight"].T + sd["ag_proj.bias"]


def test_homm_named_weights(make_model):
    model = make_model("moments")
    d, c = model.cfg.width, model.cfg.state_width
    sd = {
        "ho_proj.weight": torch.randn(c, d) * 0.2,
        "ho_proj.bias": torch.randn(c) * 0.1,
        "se_proj.weight": torch.randn(c, d) * 0.2,
        "se_proj.bias": torch.randn(c) * 0.1,
        "ag_proj.weight": torch.randn(d, c) * 0.2,
        "ag_proj.bias": torch.randn(d) * 0.1,
    }
    mixer = model.blocks[0].mixer
    import_mixer(mixer, sd)
    x = torch.randn(2, 10, d)
    y, _ = _run(mixer, x)
    torch.testing.assert_close(y, homm_formula(sd, x, model.cfg.order), rtol=1e-5, atol=1e-5)


def test_pom_named_weights_with_selection_heads(make_model):
    model = make_model("powers-heads")
    d, c, k = model.cfg.width, model.cfg.state_width, model.cfg.order
    sd = {
        "qc_proj.weight": torch.randn(c, d) * 0.3,
        "po_coeff": torch.randn(c, k),
        "se_proj.weight": torch.randn(4, d) * 0.3,
        "se_bias": torch.randn(4),
        "ag_proj.weight": torch.randn(d, c) * 0.2,
        "ag_proj.bias": torch.randn(d) * 0.1,
    }
    mixer = model.blocks[0].mixer
    import_mixer(mixer, sd)
    x = torch.randn(2, 10, d)
    y, _ = _run(mixer, x)
    torch.testing.assert_close(y, pom_formula(sd, x, k, 4), rtol=1e-5, atol=1e-5)


def test_whole_model_import_and_refusals(make_model):
    model = make_model("moments")
    d, c = model.cfg.width, model.cfg.state_width
    sd = {}
    for i in range(model.cfg.depth):
        p = f"blocks.{i}.attn."
        sd |= {
            p + "ho_proj.weight": torch.randn(c, d),
            p + "ho_proj.bias": torch.randn(c),
            p + "se_proj.weight": torch.randn(c, d),
            p + "se_proj.bias": torch.randn(c),
            p + "ag_proj.weight": torch.randn(d, c),
            p + "ag_proj.bias": torch.randn(d),
        }
    import_mixers(model, sd)
    assert torch.equal(model.blocks[1].mixer.proj_g.bias, sd["blocks.1.attn.se_proj.bias"])
    with pytest.raises(ArtifactError, match="lack"):
        import_mixer(model.blocks[0].mixer, {"ho_proj.weight": torch.randn(c, d)})
    with pytest.raises(ArtifactError, match="shape"):
        import_mixer(
            model.blocks[0].mixer,
            {
                k.removeprefix("blocks.0.attn."): v[..., :3]
                for k, v in sd.items()
                if k.startswith("blocks.0.")
            },
        )
    with pytest.raises(ArtifactError, match="no destination"):
        import_mixer(model.blocks[0].mixer, {"ho_proj.weight": torch.randn(c, d), "extra": 1})
