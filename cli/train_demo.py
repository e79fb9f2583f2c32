"""``pomexport train-demo``: train the tiny video model on synthetic bouncing shapes."""

from __future__ import annotations

from pathlib import Path

import click

from pomexport.errors import ConfigError

# TrainConfig's defaults (tests/cli check they agree); not imported here, so that
# `pomexport --help` does not pay for importing torch.
_D = {"steps": 18000, "batch": 8, "frames": 16, "lr": 1e-3}


@click.command("train-demo")
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default="pom-dit-video-tiny.safetensors",
    show_default=True,
    help="Weights file to write (EMA weights, checkpointed periodically; .json info beside).",
)
@click.option("--steps", type=int, default=None, help=f"Optimiser steps  [default: {_D['steps']}]")
@click.option("--batch", type=int, default=None, help=f"Clips per step  [default: {_D['batch']}]")
@click.option(
    "--frames", type=int, default=None, help=f"Frames per clip  [default: {_D['frames']}]"
)
@click.option("--lr", type=float, default=None, help=f"Peak learning rate  [default: {_D['lr']:g}]")
@click.option(
    "--init",
    default=None,
    metavar="MODEL",
    help="Start from these weights (bundled name such as pom-dit-video-tiny, or a "
    ".safetensors file) instead of a random init: fine-tuning, e.g. on longer --frames.",
)
@click.option(
    "--decay",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=None,
    help="Stationary state: each commit discounts the past by DECAY (1 = uniform mean). "
    "Set on the model's config, also over --init weights.  [default: the model's]",
)
@click.option(
    "--max-frame-index",
    type=click.IntRange(min=0),
    default=None,
    help="Bound the frame-index embedding's input at this index, so an endless stream "
    "never reads an unseen index.  [default: the model's]",
)
@click.option(
    "--self-context",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Fraction of clips whose committed frames are the model's own one-step estimates "
    "(it learns to correct its own errors rather than copy them forward).",
)
@click.option(
    "--self-context-t",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Largest noise level of those estimates (uniform below it).",
)
@click.option(
    "--offset-prob",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Fraction of clips starting at a random frame index (trains large indices of an "
    "unbounded frame embedding).  [default: 0.25]",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=int, default=0, help="torch CPU threads (0: torch's default).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(
    out: Path,
    steps: int | None,
    batch: int | None,
    frames: int | None,
    lr: float | None,
    init: str | None,
    decay: float | None,
    max_frame_index: int | None,
    self_context: float,
    self_context_t: float,
    offset_prob: float | None,
    seed: int,
    threads: int,
    progress: bool,
) -> None:
    """Train the `tiny` preset from scratch (or from --init weights) with the recipe of
    the bundled model (teacher-forced per-frame flow matching, EMA) and write its weights
    to OUT."""
    from pomexport.models.train_demo import TrainConfig, train

    given = {"steps": steps, "batch": batch, "frames": frames, "lr": lr}
    overrides = {k: v for k, v in given.items() if v is not None}
    if any(v <= 0 for v in overrides.values()):
        raise ConfigError("--steps, --batch, --frames and --lr must be positive")
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out must end in .safetensors, got {out.name!r}")
    stationary = {"decay": decay, "max_frame_index": max_frame_index, "offset_prob": offset_prob}
    overrides |= {k: v for k, v in stationary.items() if v is not None}
    cfg = TrainConfig(
        seed=seed,
        threads=threads,
        init=init,
        self_context=self_context,
        self_context_t=self_context_t,
        **overrides,
    )
    train(cfg, out, progress=progress)
    click.echo(f"wrote {out}")
