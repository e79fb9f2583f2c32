"""The defining invariant (docs/design.md §3): frame-by-frame with the state equals the
block-causal parallel forward."""

from __future__ import annotations

import torch

TOL = 1e-5  # fp32, 8 frames (issue 2 acceptance)


def assert_state_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """States are sums of thousands of features; summation order differs between forms, so
    the tolerance is 1e-5 of the state's magnitude (fp32 with cancellation)."""
    scale = expected.abs().max().item()
    assert (actual - expected).abs().max().item() <= 1e-5 * max(scale, 1.0)


def _clip(model, batch=2, frames=8, offset=0):
    cfg = model.cfg
    x = torch.randn(batch, frames, cfg.in_channels, cfg.input_size, cfg.input_size)
    t = torch.rand(batch, frames)
    label = torch.randint(0, cfg.num_classes, (batch,))
    frame_index = (offset + torch.arange(frames)).expand(batch, frames)
    return x, t, label, frame_index


@torch.no_grad()
def _step_through(model, x, t, label, frame_index, state, count):
    vs = []
    for f in range(x.shape[1]):
        v, state = model.step(x[:, f], t[:, f], label, frame_index[:, f], state, count)
        count = count + model.cfg.tokens_per_frame
        vs.append(v)
    return torch.stack(vs, dim=1), state, count


@torch.no_grad()
def test_stepwise_equals_block_causal_parallel(make_model, variant):
    model = make_model(variant)
    x, t, label, fi = _clip(model)
    v_par, sums = model.forward_clip(x, t, label, fi)
    v_seq, state, _ = _step_through(model, x, t, label, fi, *model.zero_state(2))
    assert (v_seq - v_par).abs().max().item() <= TOL
    assert_state_close(state, sums.sum(dim=2))


@torch.no_grad()
def test_stepwise_equals_teacher_forced(make_model, variant):
    """Denoising frame f after committing clean frames 0..f-1 == the teacher-forced forward."""
    model = make_model(variant)
    clean, t, label, fi = _clip(model, frames=6, offset=3)
    noisy = torch.randn_like(clean)
    v_tf = model.forward_teacher_forced(noisy, t, clean, label, fi)
    state, count = model.zero_state(2)
    for f in range(clean.shape[1]):
        v, _ = model.step(noisy[:, f], t[:, f], label, fi[:, f], state, count)
        assert (v - v_tf[:, f]).abs().max().item() <= TOL
        _, state = model.step(clean[:, f], torch.zeros(2), label, fi[:, f], state, count)
        count = count + model.cfg.tokens_per_frame


@torch.no_grad()
def test_commit_one_at_a_time_equals_together(make_model, variant):
    model = make_model(variant)
    x, _, label, fi = _clip(model, frames=5)
    t0 = torch.zeros(2, 5)
    _, sums = model.forward_clip(x, t0, label, fi)
    _, state, count = _step_through(model, x, t0, label, fi, *model.zero_state(2))
    assert_state_close(state, sums.sum(dim=2))
    assert torch.equal(count, torch.full((2,), 5.0 * model.cfg.tokens_per_frame))
    # Committing the last two frames from a prefix state gives the same state too.
    _, s3, c3 = _step_through(model, x[:, :3], t0[:, :3], label, fi[:, :3], *model.zero_state(2))
    _, sums_tail = model.forward_clip(x[:, 3:], t0[:, 3:], label, fi[:, 3:], s3, c3)
    assert_state_close(s3 + sums_tail.sum(dim=2), state)


@torch.no_grad()
def test_token_permutation_inside_a_frame_permutes_the_mixer_output(make_model, variant):
    model = make_model(variant)
    mixer = model.blocks[0].mixer
    n, d = model.cfg.tokens_per_frame, model.cfg.width
    x = torch.randn(2, n, d)
    state, count = torch.randn(2, model.cfg.state_width).abs(), torch.full((2,), 64.0)
    perm = torch.randperm(n)
    y, s = mixer(x, state, count)
    y_p, s_p = mixer(x[:, perm], state, count)
    torch.testing.assert_close(y_p, y[:, perm], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s_p, s, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_image_model_step_is_parallel_forward_with_zero_state(make_model):
    model = make_model("moments", video=False)
    x, t, label, fi = _clip(model, frames=1)
    v_par, _ = model.forward_clip(x, t, label, fi)
    v, state_out = model.step(x[:, 0], t[:, 0], label, fi[:, 0], *model.zero_state(2))
    assert (v - v_par[:, 0]).abs().max().item() <= TOL
    assert state_out.shape == (model.cfg.depth, 2, model.cfg.state_width)


@torch.no_grad()
def test_text_conditioned_model_with_cross_pom(make_model):
    model = make_model("powers", text_dim=24)
    x, t, _, fi = _clip(model, frames=3)
    text = torch.randn(2, 7, 24)
    v_par, _ = model.forward_clip(x, t, text, fi)
    v_seq, _, _ = _step_through(model, x, t, text, fi, *model.zero_state(2))
    assert (v_seq - v_par).abs().max().item() <= TOL
    v_other, _ = model.forward_clip(x, t, torch.randn(2, 7, 24), fi)
    assert (v_other - v_par).abs().max().item() > 1e-3  # the text matters


def test_training_gradients_flow_through_the_op(make_model, variant):
    model = make_model(variant).train()
    clean, t, label, fi = _clip(model, frames=3)
    loss = model.forward_teacher_forced(torch.randn_like(clean), t, clean, label, fi).square()
    loss.mean().backward()
    mixer = model.blocks[0].mixer
    for p in (mixer.proj_h.weight, mixer.proj_g.weight, mixer.coeff):
        if p is not None:
            assert p.grad is not None and p.grad.abs().sum() > 0


# -- stationary state (issue 18): decay < 1 and a bounded frame index --------------------
DECAY, MAX_FRAME_INDEX = 0.6, 2


def _discounted_total(sums: torch.Tensor, decay: float, state=None) -> torch.Tensor:
    """The committed state after frames (L, B, F, C) of sums: d*state + sum P, frame by frame."""
    total = torch.zeros_like(sums[:, :, 0]) if state is None else state
    for f in range(sums.shape[2]):
        total = decay * total + sums[:, :, f]
    return total


@torch.no_grad()
def test_stationary_stepwise_equals_block_causal_parallel(make_model, variant):
    """The defining invariant with decay < 1, frames past max_frame_index, and a clip started
    from a committed prefix (a non-zero count: the discounted count is derived from it)."""
    model = make_model(variant, decay=DECAY, max_frame_index=MAX_FRAME_INDEX)
    x, t, label, fi = _clip(model, frames=6)
    v_par, sums = model.forward_clip(x, t, label, fi)
    v_seq, state, count = _step_through(model, x, t, label, fi, *model.zero_state(2))
    assert (v_seq - v_par).abs().max().item() <= TOL
    assert_state_close(state, _discounted_total(sums, DECAY))
    assert torch.equal(count, torch.full((2,), 6.0 * model.cfg.tokens_per_frame))  # tokens
    # Frames 3.. from the state of frames 0..2, in parallel: the same velocities and state.
    _, s3, c3 = _step_through(model, x[:, :3], t[:, :3], label, fi[:, :3], *model.zero_state(2))
    v_tail, sums_tail = model.forward_clip(x[:, 3:], t[:, 3:], label, fi[:, 3:], s3, c3)
    assert (v_tail - v_par[:, 3:]).abs().max().item() <= TOL
    assert_state_close(_discounted_total(sums_tail, DECAY, s3), state)


@torch.no_grad()
def test_stationary_stepwise_equals_teacher_forced(make_model, variant):
    model = make_model(variant, decay=DECAY, max_frame_index=MAX_FRAME_INDEX)
    clean, t, label, fi = _clip(model, frames=5, offset=1)
    noisy = torch.randn_like(clean)
    v_tf = model.forward_teacher_forced(noisy, t, clean, label, fi)
    state, count = model.zero_state(2)
    for f in range(clean.shape[1]):
        v, _ = model.step(noisy[:, f], t[:, f], label, fi[:, f], state, count)
        assert (v - v_tf[:, f]).abs().max().item() <= TOL, f
        _, state = model.step(clean[:, f], torch.zeros(2), label, fi[:, f], state, count)
        count = count + model.cfg.tokens_per_frame


def _hand_mixer(mixer, x, state, count, decay, tokens):
    """The issue's closed form, by hand: y reads (d*S + sum P) / (d*c + N); S <- d*S + sum P."""
    from pomexport.models.polynomial import gate_activation, polynomial_features, select

    sum_p = polynomial_features(mixer.proj_h(x), mixer.variant, mixer.order, mixer.coeff).sum(1)
    mean = (decay * state + sum_p) / (decay * count + tokens).unsqueeze(-1)
    y = select(gate_activation(mixer.proj_g(x), mixer.gate), mean.unsqueeze(1), mixer.sel_heads)
    return mixer.proj_out(y), decay * state + sum_p


@torch.no_grad()
def test_stationary_step_is_the_hand_recursion(make_model, variant):
    """Every mixer call of ``step`` (a denoising step and the commit of 4 frames) against a hand
    loop of the recursion, whose discounted count c <- d*c + N is kept apart from the
    contract's token count."""
    model = make_model(variant, decay=DECAY, max_frame_index=MAX_FRAME_INDEX)
    cfg, n = model.cfg, model.cfg.tokens_per_frame
    calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for i, block in enumerate(model.blocks):
        block.mixer.register_forward_hook(lambda m, a, out, i=i: calls.append((i, a[0], out[0])))
    x, _, label, fi = _clip(model, frames=4)
    state, count = model.zero_state(2)
    hand_state, hand_count = torch.zeros_like(state), torch.zeros(2)
    for f in range(4):
        for t in (0.7, 0.0):  # the last one commits
            calls.clear()
            _, state_out = model.step(x[:, f], torch.full((2,), t), label, fi[:, f], state, count)
            assert [i for i, _, _ in calls] == list(range(cfg.depth))
            for layer, u, y in calls:
                mixer = model.blocks[layer].mixer
                y_hand, s_hand = _hand_mixer(mixer, u, hand_state[layer], hand_count, DECAY, n)
                torch.testing.assert_close(y, y_hand, rtol=1e-5, atol=1e-5)
                assert_state_close(state_out[layer], s_hand)
        state, count = state_out, count + n
        hand_state, hand_count = state_out, DECAY * hand_count + n


@torch.no_grad()
def test_frames_past_max_frame_index_read_its_embedding(make_model):
    cfg = dict(decay=DECAY, max_frame_index=MAX_FRAME_INDEX)
    bounded, unbounded = make_model("moments", **cfg), make_model("moments", decay=DECAY)
    x, t, label, _ = _clip(bounded, frames=1)
    state, count = bounded.zero_state(2)

    def v(model, index: int) -> torch.Tensor:
        return model.step(x[:, 0], t[:, 0], label, torch.full((2,), index), state, count)[0]

    at_bound = v(bounded, MAX_FRAME_INDEX)
    for past in (MAX_FRAME_INDEX + 1, 1000, 2**40):
        assert torch.equal(v(bounded, past), at_bound)
    assert not torch.equal(v(bounded, MAX_FRAME_INDEX - 1), at_bound)
    assert torch.equal(v(unbounded, MAX_FRAME_INDEX), at_bound)  # same weights below the bound
    assert not torch.equal(v(unbounded, MAX_FRAME_INDEX + 1), at_bound)
