"""Demo training: deterministic by seed, learns, checkpoints a loadable model, clean CLI."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.models import get_preset, load_weights
from pomexport.models.train_demo import TrainConfig, flow_loss, lr_at, train, trained_ranges

SMALL = get_preset("tiny").replace(width=32, depth=2, patch_size=4)


def _config(**changes) -> TrainConfig:
    base = dict(steps=3, batch=2, frames=4, warmup=2, checkpoint_every=2, threads=1, model=SMALL)
    return TrainConfig(**{**base, **changes})


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(autouse=True)
def _restore_determinism():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_same_seed_gives_identical_weights_other_seed_differs():
    a = _weights(train(_config(), progress=False))
    b = _weights(train(_config(), progress=False))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _weights(train(_config(seed=1), progress=False))
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_checkpoint_reloads_exactly_and_records_training_info(tmp_path):
    out = tmp_path / "demo.safetensors"
    ema = train(_config(), out, progress=False)
    loaded = load_weights(out)
    assert loaded.cfg == SMALL
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in ema.state_dict().items())
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["step"] == 3 and info["train"]["seed"] == 0


def test_init_starts_from_the_given_weights_and_their_config(tmp_path):
    start = tmp_path / "start.safetensors"
    other = SMALL.replace(depth=1)
    train(_config(model=other), start, progress=False)
    # lr 0: the optimiser moves nothing, so the EMA must stay exactly on the start weights
    frozen = train(_config(lr=0.0, init=str(start)), progress=False)
    assert frozen.cfg == other
    want = load_weights(start).state_dict()
    assert all(torch.equal(v, want[k]) for k, v in frozen.state_dict().items())
    moved = train(_config(init=str(start)), progress=False).state_dict()
    assert any(not torch.equal(v, want[k]) for k, v in moved.items())


def test_cli_refuses_an_unknown_init_before_training(tmp_path):
    out = tmp_path / "m.safetensors"
    result = CliRunner().invoke(cli, ["train-demo", "--init", "nosuch", "-o", str(out)])
    assert result.exit_code == 1 and "unknown model 'nosuch'" in result.output
    assert not list(tmp_path.iterdir())


def test_lr_warms_up_holds_then_decays_to_zero_over_the_last_fraction():
    cfg = _config(warmup=4, lr=1e-3, steps=100, decay_frac=0.3)
    assert lr_at(0, cfg) == pytest.approx(2.5e-4)
    assert lr_at(3, cfg) == lr_at(70, cfg) == pytest.approx(1e-3)
    assert lr_at(85, cfg) == pytest.approx(0.5e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-3 / 30)


def test_without_decay_the_lr_is_constant_so_any_checkpoint_is_a_shorter_run():
    cfg = _config(warmup=4, lr=1e-3, steps=100, decay_frac=0.0)
    assert lr_at(3, cfg) == lr_at(99, cfg) == lr_at(10**6, cfg) == pytest.approx(1e-3)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    cfg = _config()
    from pomexport.models import PoMDiT
    from pomexport.models.demo_data import sample_clips

    model = PoMDiT(SMALL)
    clean, label = sample_clips(4, 4, torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return flow_loss(model, clean, label, cfg, torch.Generator().manual_seed(5))

    first = loss().item()
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert loss().item() < 0.8 * first


def test_cli_rejects_bad_options_with_one_line(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli, ["train-demo", "--steps", "0", "-o", str(tmp_path / "m.safetensors")]
    )
    assert result.exit_code == 1 and "must be positive" in result.output
    result = runner.invoke(cli, ["train-demo", "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 1 and ".safetensors" in result.output
    assert not list(tmp_path.iterdir())


def test_cli_and_module_entry_points_train_the_tiny_preset(tmp_path):
    out = tmp_path / "m.safetensors"
    args = ["--steps", "1", "--batch", "1", "--frames", "2", "--threads", "1", "-o", str(out)]
    result = CliRunner().invoke(cli, ["train-demo", *args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert load_weights(out).cfg == get_preset("tiny")
    from pomexport.models.train_demo import main

    main(["--steps", "1", "--batch", "1", "--frames", "2", "--threads", "1", "--out", str(out)])
    assert json.loads(out.with_suffix(".json").read_text())["step"] == 1


def test_cli_help_states_the_recipe_defaults():
    from pomexport.cli.train_demo import _D

    d = TrainConfig()
    assert _D == {"steps": d.steps, "batch": d.batch, "frames": d.frames, "lr": d.lr}


def test_stationary_fine_tune_sets_the_config_and_records_its_stages(tmp_path):
    first = tmp_path / "first.safetensors"
    train(_config(), first, progress=False)
    second = tmp_path / "second.safetensors"
    args = ["train-demo", "--init", str(first), "--decay", "0.6", "--max-frame-index", "3"]
    args += ["--self-context", "1", "--steps", "2", "--batch", "2", "--frames", "4"]
    result = CliRunner().invoke(cli, [*args, "--threads", "1", "--no-progress", "-o", str(second)])
    assert result.exit_code == 0, result.output
    model = load_weights(second)
    assert (model.cfg.decay, model.cfg.max_frame_index) == (0.6, 3)
    info = json.loads(second.with_suffix(".json").read_text())
    assert info["train"]["self_context"] == 1.0 and info["init_info"]["train"]["frames"] == 4
    ranges = trained_ranges(info, model.cfg)
    # Every stage counts: stage 1 saw indices up to 3 + 48 (offsets), stage 2 up to its clamp.
    assert ranges.frame_index == 3 + TrainConfig().max_offset
    assert ranges.mixer_count == pytest.approx(0.6 * 16 * (1 - 0.6**3) / 0.4)


def test_self_made_context_changes_what_the_model_learns_from():
    plain = _weights(train(_config(), progress=False))
    selfmade = _weights(train(_config(self_context=1.0), progress=False))
    assert any(not torch.equal(plain[k], selfmade[k]) for k in plain)


def test_config_and_output_are_checked_by_the_library(tmp_path):
    """What train-demo refuses, TrainConfig and train() refuse (lr 0 stays: a frozen run)."""
    from pomexport.errors import ConfigError
    from pomexport.models.train_demo import check_weights_out

    with pytest.raises(ConfigError, match="must be positive"):
        _config(frames=0)
    assert _config(lr=0.0).lr == 0.0
    with pytest.raises(ConfigError, match=r"--out must end in \.safetensors, got 'm\.pt'"):
        train(_config(), tmp_path / "m.pt", progress=False)
    check_weights_out(None)
    assert not list(tmp_path.iterdir())
