"""The softmax-attention baseline: KV-cache stepping == full block-causal recompute."""

from __future__ import annotations

import pytest
import torch

from pomexport.errors import StateError
from pomexport.models import get_preset
from pomexport.models.attention_baseline import (
    AttentionDiT,
    SelfAttention,
    block_causal_attend,
    block_causal_mask,
    default_head_dim,
    random_attention_model,
)

TOL = 1e-5  # fp32; the two paths differ only in SDPA shapes and summation order


def _model() -> AttentionDiT:
    return random_attention_model(get_preset("tiny").replace(depth=2), seed=1)


def _clip(model: AttentionDiT, batch: int = 2, frames: int = 4, offset: int = 3):
    cfg = model.cfg
    shape = (batch, frames, cfg.in_channels, cfg.input_size, cfg.input_size)
    clean, noisy = torch.randn(shape), torch.randn(shape)
    t = torch.rand(batch, frames)
    label = torch.randint(0, cfg.num_classes, (batch,))
    frame_index = (offset + torch.arange(frames)).expand(batch, frames)
    return clean, noisy, t, label, frame_index


def test_head_dims_follow_dit():
    assert default_head_dim(384) == 64 and default_head_dim(1152) == 64
    assert default_head_dim(96) == 16  # tiny: 6 heads
    assert AttentionDiT(get_preset("S/4")).heads == 6


@torch.no_grad()
def test_kv_cache_stepping_equals_full_recompute():
    model = _model()
    clean, noisy, t, label, fi = _clip(model)
    frames = clean.shape[1]
    cache = model.empty_cache(2, frames)
    for f in range(frames):
        v_kv, _ = model.step(noisy[:, f], t[:, f], label, fi[:, f], cache)
        v_full = model.step_recompute(noisy[:, f], t[:, f], label, fi[:, f], clean[:, :f])
        assert (v_kv - v_full).abs().max().item() <= TOL, f"frame {f}"
        assert v_kv.abs().max().item() > 1e-3  # not vacuous
        _, cache = model.step(clean[:, f], torch.zeros(2), label, fi[:, f], cache)
    assert cache.length == frames * model.cfg.tokens_per_frame


@torch.no_grad()
def test_clean_steps_equal_block_causal_clip():
    """Committing clean frames one at a time computes the parallel block-causal forward."""
    model = _model()
    clean, _, _, label, fi = _clip(model)
    v_par = model.forward_clip(clean, torch.zeros(fi.shape), label, fi)
    cache = model.empty_cache(2, clean.shape[1])
    for f in range(clean.shape[1]):
        v, cache = model.step(clean[:, f], torch.zeros(2), label, fi[:, f], cache)
        assert (v - v_par[:, f]).abs().max().item() <= TOL


@torch.no_grad()
def test_block_causal_future_frames_do_not_leak():
    model = _model()
    clean, _, t, label, fi = _clip(model)
    changed = clean.clone()
    changed[:, -1] += 1.0
    v_a = model.forward_clip(clean, t, label, fi)
    v_b = model.forward_clip(changed, t, label, fi)
    assert torch.equal(v_a[:, :-1], v_b[:, :-1])
    assert (v_a[:, -1] - v_b[:, -1]).abs().max().item() > 1e-3
    mask = block_causal_mask(3, 2)
    assert mask[-1].all() and mask[2, :4].all() and not mask[2, 4:].any()
    assert mask[0, :2].all() and not mask[0, 2:].any()


@torch.no_grad()
def test_per_frame_attention_equals_masked_sdpa():
    attn = SelfAttention(32, 4)
    q, k, v = attn.project(torch.randn(2, 3 * 5, 32))
    expected = attn.attend(q, k, v, block_causal_mask(3, 5))
    assert (block_causal_attend(attn, q, k, v, 3) - expected).abs().max().item() <= TOL


def test_full_cache_is_a_state_error():
    model = _model()
    clean, _, t, label, fi = _clip(model, frames=1)
    cache = model.empty_cache(2, 1)
    _, cache = model.step(clean[:, 0], t[:, 0], label, fi[:, 0], cache)
    with pytest.raises(StateError, match="KV cache full"):
        model.step(clean[:, 0], t[:, 0], label, fi[:, 0] + 1, cache)
