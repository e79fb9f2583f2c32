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
    cfg = TrainConfig(seed=seed, threads=threads, init=init, **overrides)
    train(cfg, out, progress=progress)
    click.echo(f"wrote {out}")
