"""runtime/measure/plan.py: a preset's budget equals a hand computation of the formula."""

from __future__ import annotations

import pytest

from pomexport.errors import ConfigError
from pomexport.models import get_preset
from pomexport.runtime.measure.plan import (
    MIB,
    TARGETS,
    get_target,
    plan,
    plan_models,
    weight_counts,
)


def _hand_counts(cfg) -> tuple[int, int, int]:
    """(params, quantized weights, quantized output channels) of a moments PoM-DiT, by hand."""
    d, c, h, p2 = cfg.width, cfg.state_width, int(cfg.width * cfg.mlp_ratio), cfg.patch_size**2
    cin, depth = cfg.in_channels, cfg.depth
    patch = cin * p2 * d + d
    time = 256 * d + d + d * d + d
    frame = 64 * d + d
    label = (cfg.num_classes + 1) * d
    block = (d * c + c) * 2 + (c * d + d) + (d * h + h + h * d + d) + (d * 6 * d + 6 * d)
    final = (d * 2 * d + 2 * d) + (d * p2 * cin + p2 * cin)
    params = patch + time + frame + label + depth * block + final
    quantized = cin * p2 * d + depth * (2 * d * c + 2 * d * h) + d * p2 * cin
    channels = d + depth * (2 * c + h + d) + p2 * cin
    return params, quantized, channels


@pytest.mark.parametrize("preset", ["tiny", "S/2"])
def test_weight_counts_match_hand_count(preset):
    counts = weight_counts(get_preset(preset))
    assert (counts.params, counts.quantized, counts.quantized_channels) == _hand_counts(
        get_preset(preset)
    )


def test_s2_int8_budget_on_orin_nano_equals_hand_computation():
    cfg = get_preset("S/2")  # D 384, L 12, C = 2*2*384 = 1536, H 1536, N 256, 4x32x32 latents
    b = plan(cfg, TARGETS["orin-nano-8gb"], "int8", streams=2, batch=4, cfg_guidance=True)
    params, pq, cq = _hand_counts(cfg)
    weights = pq + 4 * cq + 2 * (params - pq)
    acts = 4 * 256 * (2 * 384 + max(3 * 1536, 2 * 1536)) * 2  # B N (2D + max(3C, 2H)) a
    io = 2 * 4 * (4 * 32 * 32) * 2 + 24 * 4 + 4 * 2 * (4 * 32 * 32)
    per_stream = 12 * 1536 * 4 + 4
    state = 3 * 4 * per_stream  # ping-pong + scratch, 4 rows (2 streams x CFG)
    overhead = (300 + 400) * MIB
    assert (b.rows, b.batch, b.params) == (4, 4, params)
    assert (b.weights, b.activations, b.io) == (weights, acts, io)
    assert (b.state_per_stream, b.state, b.overhead) == (per_stream, state, overhead)
    assert b.run_total == weights + acts + io + state + overhead
    assert b.build_total == 3 * weights + 1024 * MIB + overhead
    assert b.available == (8192 - 1536) * MIB and b.fits


def test_precisions_order_weights():
    cfg = get_preset("S/2")
    sizes = [plan(cfg, TARGETS["thor"], p).weights for p in ("fp32", "fp16", "int8")]
    assert sizes[0] == 2 * sizes[1] and sizes[2] < sizes[1]


def test_xl2_fp16_runs_but_does_not_build_on_orin_nano():
    (b,) = plan_models(["XL/2"], TARGETS["orin-nano-8gb"], ["fp16"])
    assert b.fits_run and not b.fits_build and not b.fits


def test_overrides_and_errors():
    target = get_target("orin-nano-8gb", os_reserve_mib=2048, tensorrt_mib=None)
    assert target.available_mib == 8192 - 2048 and target.tensorrt_mib == 400
    with pytest.raises(ConfigError, match="unknown target"):
        get_target("orin-mega")
    with pytest.raises(ConfigError, match="need 4 batch rows .* max batch is 2"):
        plan(get_preset("tiny"), target, "fp16", streams=2, batch=2)
    with pytest.raises(ConfigError, match="precision"):
        plan(get_preset("tiny"), target, "bf16")


def test_a_stationary_model_plans_like_the_same_architecture(make_model, tmp_path):
    """Issue 18: decay and max_frame_index add no buffer (state [L, B, C] and count [B] as
    before, the discount is graph arithmetic), so a decay-0.6 weights file plans exactly as
    its architecture without them; its config reads back with the new keys."""
    from pomexport.models.weights import save_weights
    from pomexport.runtime.measure.plan import model_config

    model = make_model("moments", decay=0.6, max_frame_index=2)
    path = str(save_weights(model, tmp_path / "stationary.safetensors"))
    assert model_config(path) == model.cfg
    target = TARGETS["orin-nano-8gb"]
    budgets = plan_models([path], target, ["fp32", "int8"], streams=2)
    plain = model.cfg.replace(decay=1.0, max_frame_index=None)
    for budget in budgets:
        assert budget == plan(plain, target, budget.precision, streams=2, model=path)
