"""VideoGenerator: the generated clip is what the parallel reference computes, streams are
independent of their batch, noise is deterministic, cancellation leaves it usable."""

from __future__ import annotations

import pytest
import torch

from pomexport.errors import ConfigError, StateError
from pomexport.runtime import TorchBackend, VideoGenerator, generate
from pomexport.runtime.backend import Backend, StepBuffers

STREAM_ATOL = 1e-5  # same stream alone vs in a batch: only GEMM blocking order differs


class RecordingBackend:
    """Delegates to a real backend and keeps a copy of every step's inputs and outputs.

    Optionally runs ``hook(call_index)`` before each step (to cancel or fail mid-frame).
    """

    def __init__(self, inner: Backend, hook=None) -> None:
        self.inner, self.hook, self.calls = inner, hook, []
        self.config, self.device, self.dtype, self.name = (
            inner.config,
            inner.device,
            inner.dtype,
            "recording",
        )

    def allocate(self, batch: int) -> StepBuffers:
        return self.inner.allocate(batch)

    def step(self, io, state, count, state_out) -> None:
        if self.hook is not None:
            self.hook(len(self.calls))
        self.inner.step(io, state, count, state_out)
        copy = {k: getattr(io, k).clone() for k in ("x_t", "t", "label", "frame_index", "v")}
        self.calls.append(copy)


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    scale = max(expected.abs().max().item(), 1.0)
    return (actual - expected).abs().max().item() / scale


def test_backend_protocol_is_satisfied(make_model):
    backend = TorchBackend(make_model())
    assert isinstance(backend, Backend)
    assert isinstance(RecordingBackend(backend), Backend)


@torch.no_grad()
@pytest.mark.parametrize("variant, sampler", [("moments", "euler"), ("powers", "heun")])
def test_generation_equals_parallel_reference(make_model, variant, sampler):
    """The committed state equals the block-causal forward of the generated clip at t = 0,
    and every velocity computed while denoising frame f equals the teacher-forced forward
    over (clean frames 0..f-1, the noisy input) — for the conditional and the CFG rows."""
    model = make_model(variant)
    frames, slots, null = 3, 2, model.null_label
    backend = RecordingBackend(TorchBackend(model))
    gen = VideoGenerator(backend, slots=slots, steps=3, cfg_scale=2.5, sampler=sampler)
    clip = gen.run([1, 4], frames, seed=5)

    labels = torch.tensor([1, 4, null, null])
    clean = torch.cat([clip, clip])  # rows: conditional slots then unconditional slots
    fi = torch.arange(frames).expand(2 * slots, frames)
    _, sums = model.forward_clip(clean, torch.zeros(2 * slots, frames), labels, fi)
    assert relative_error(gen.state.read, sums.sum(dim=2)) <= 1e-4
    assert torch.equal(
        gen.state.count, torch.full((4,), float(frames * model.cfg.tokens_per_frame))
    )

    per_frame = 3 * (2 if sampler == "heun" else 1) + 1  # the last one commits at t = 0
    assert len(backend.calls) == frames * per_frame
    denoising = [c for i, c in enumerate(backend.calls) if i % per_frame != per_frame - 1]
    for call in denoising:
        f = int(call["frame_index"][0])
        assert torch.equal(call["label"], labels) and (call["frame_index"] == f).all()
        x_t = torch.cat([clean[:, :f], call["x_t"].unsqueeze(1)], dim=1)
        t = torch.cat([torch.zeros(2 * slots, f), call["t"].unsqueeze(1)], dim=1)
        v = model.forward_teacher_forced(x_t, t, clean[:, : f + 1], labels, fi[:, : f + 1])
        assert relative_error(call["v"], v[:, f]) <= 1e-4


def _collect(frames_iter, clips: dict) -> None:
    for frame in frames_iter:
        clips.setdefault(frame.stream, {})[frame.index] = frame.latent


def _alone(model, stream: int, label: int, frames: int, seed: int = 11, **kw) -> torch.Tensor:
    gen = VideoGenerator(TorchBackend(model), slots=1, **kw)
    gen.start(0, label, seed=seed, stream=stream)
    return torch.stack([f.latent for f in gen.stream(frames)])


def test_streams_in_a_batch_equal_streams_alone(make_model):
    """Continuous batching: a stream joins mid-way, a slot is reset and reused."""
    model = make_model("moments")
    kw = dict(steps=2, cfg_scale=2.0)
    gen = VideoGenerator(TorchBackend(model), slots=3, **kw)
    clips: dict = {}
    gen.start(0, label=1, seed=11, stream=0)
    gen.start(1, label=4, seed=11, stream=1)
    _collect(gen.stream(2), clips)
    gen.start(2, label=7, seed=11, stream=2)  # joins while 0 and 1 are at frame 2
    _collect(gen.stream(2), clips)
    gen.reset(0)
    gen.start(0, label=2, seed=11, stream=3)  # reused slot: starts from an empty state
    _collect(gen.stream(2), clips)
    assert gen.slots[1].frame == 6 and gen.slots[2].frame == 4 and gen.slots[0].frame == 2

    expected = {0: (1, 4), 1: (4, 6), 2: (7, 4), 3: (2, 2)}  # stream: (label, frames)
    assert {s: len(c) for s, c in clips.items()} == {s: n for s, (_, n) in expected.items()}
    for stream, (label, n) in expected.items():
        batched = torch.stack([clips[stream][i] for i in range(n)])
        alone = _alone(model, stream, label, n, **kw)
        assert (batched - alone).abs().max().item() <= STREAM_ATOL, stream


def test_noise_is_deterministic_by_seed_and_stream(make_model):
    model = make_model("moments")
    a = generate(model, [3, 3], frames=2, steps=2, seed=1)
    b = generate(model, [3, 3], frames=2, steps=2, seed=1)
    c = generate(model, [3, 3], frames=2, steps=2, seed=2)
    assert a.shape == (2, 2, 3, 16, 16) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # same label, different stream: different noise


def test_cancel_between_frames_and_mid_frame_leaves_generator_reusable(make_model):
    model = make_model("powers")
    kw = dict(slots=2, steps=3, cfg_scale=1.5)
    reference = VideoGenerator(TorchBackend(model), **kw).run([0, 5], frames=3)

    cancel_at = {"call": None}
    backend = RecordingBackend(
        TorchBackend(model), hook=lambda i: gen.cancel() if i == cancel_at["call"] else None
    )
    gen = VideoGenerator(backend, **kw)
    gen.start(0, 0, stream=0)
    gen.start(1, 5, stream=1)
    got = []
    for frame in gen.stream(3):  # cancel from the consumer after the first frame
        got.append(frame)
        gen.cancel()
    assert [f.index for f in got] == [0, 0] and gen.slots[0].frame == 1
    cancel_at["call"] = len(backend.calls) + 1  # during the next frame's second evaluation
    assert list(gen.stream(2)) == []  # cancelled mid-frame: nothing committed
    assert gen.slots[0].frame == 1 and gen.slots[1].frame == 1
    got += list(gen.stream(2))  # resumes at frame 1 from the same noise
    clip = torch.stack([torch.stack([f.latent for f in got if f.slot == s]) for s in (0, 1)])
    assert torch.equal(clip, reference)


def test_an_error_mid_frame_leaves_the_state_untouched(make_model):
    model = make_model("moments")

    def fail(i: int) -> None:
        if i == 5:
            raise KeyboardInterrupt

    gen = VideoGenerator(RecordingBackend(TorchBackend(model), hook=fail), slots=1, steps=3)
    gen.start(0, 2)
    with pytest.raises(KeyboardInterrupt):
        list(gen.stream(2))  # frame 0 commits at call 3; frame 1 fails at call 5
    state, count = gen.state.read.clone(), gen.state.count.clone()
    assert gen.slots[0].frame == 1 and count.item() == model.cfg.tokens_per_frame
    gen.backend.hook = None
    resumed = torch.stack([f.latent for f in gen.stream(1)])
    alone = _alone(model, 0, 2, 2, seed=0, steps=3)
    assert torch.equal(resumed[0], alone[1])
    assert not torch.equal(gen.state.read, state)


def test_slot_errors(make_model):
    model = make_model("moments")
    gen = VideoGenerator(TorchBackend(model), slots=2, steps=1)
    with pytest.raises(StateError, match="no active stream"):
        list(gen.stream(1))
    gen.start(0, 1)
    with pytest.raises(StateError, match="busy"):
        gen.start(0, 2)
    with pytest.raises(StateError, match="out of range"):
        gen.start(2, 1)
    with pytest.raises(ConfigError, match="label"):
        gen.start(1, model.cfg.num_classes + 1)
    with pytest.raises(ConfigError, match="frames"):
        list(gen.stream(0))
    with pytest.raises(ConfigError, match="sampler"):
        VideoGenerator(TorchBackend(model), sampler="dpm")


def test_free_slots_keep_an_empty_state(make_model):
    model = make_model("moments")
    gen = VideoGenerator(TorchBackend(model), slots=3, steps=1, cfg_scale=3.0)
    gen.start(1, 4)
    list(gen.stream(2))
    rows = [0, 2, 3, 5]  # free slots 0 and 2, conditional and unconditional rows
    assert gen.state.read[:, rows].abs().max().item() == 0.0
    assert gen.state.count[rows].abs().max().item() == 0.0
    assert gen.state.count[[1, 4]].tolist() == [2.0 * model.cfg.tokens_per_frame] * 2
    gen.reset(1)
    assert gen.state.read.abs().max().item() == 0.0 and gen.slots == (None, None, None)
