"""``pomexport train-demo``: train the tiny video model on synthetic bouncing shapes.
A thin layer over :func:`pomexport.models.train_demo.train`."""

from __future__ import annotations

from pathlib import Path

import click

from pomexport.cli import _options as o

# TrainConfig's defaults (tests/cli check they agree); not imported here, so that
# `pomexport --help` does not pay for importing torch.
_D = {"steps": 18000, "batch": 8, "frames": 16, "lr": 1e-3}
_OUT = "Weights file to write (EMA weights, checkpointed periodically; .json info beside)."
_INIT = (
    "Start from these weights (bundled name such as pom-dit-video-tiny, or a .safetensors "
    "file) instead of a random init: fine-tuning, e.g. on longer --frames."
)
_DECAY = (
    "Stationary state: each commit discounts the past by DECAY (1 = uniform mean). Set on the "
    "model's config, also over --init weights.  [default: the model's]"
)
_MAX_INDEX = (
    "Bound the frame-index embedding's input at this index, so an endless stream never reads "
    "an unseen index.  [default: the model's]"
)
_SELF = (
    "Fraction of clips whose committed frames are the model's own one-step estimates (it "
    "learns to correct its own errors rather than copy them forward)."
)
_OFFSET = (
    "Fraction of clips starting at a random frame index (trains large indices of an unbounded "
    "frame embedding).  [default: 0.25]"
)
_FRACTION = click.FloatRange(0.0, 1.0)


@click.command("train-demo")
@o.out_option(_OUT, type=click.Path(dir_okay=False, path_type=Path),
              default="pom-dit-video-tiny.safetensors")  # fmt: skip
@o.option("--steps", type=int, default=None, help=f"Optimiser steps  [default: {_D['steps']}]")
@o.option("--batch", type=int, default=None, help=f"Clips per step  [default: {_D['batch']}]")
@o.frames_option(None, f"Frames per clip  [default: {_D['frames']}]")
@o.option("--lr", type=click.FloatRange(0.0, min_open=True), default=None,
          help=f"Peak learning rate  [default: {_D['lr']:g}]")  # fmt: skip
@o.option("--init", default=None, metavar="MODEL", help=_INIT)
@o.option("--decay", type=click.FloatRange(0.0, 1.0, min_open=True), default=None, help=_DECAY)
@o.option("--max-frame-index", type=click.IntRange(min=0), default=None, help=_MAX_INDEX)
@o.option("--self-context", type=_FRACTION, default=0.0, help=_SELF)
@o.option("--self-context-t", type=_FRACTION, default=0.5,
          help="Largest noise level of those estimates (uniform below it).")  # fmt: skip
@o.option("--offset-prob", type=_FRACTION, default=None, help=_OFFSET)
@o.seed_option(None)
@o.threads_option("torch CPU threads (0: torch's default).")
@o.progress_option()
def command(out: Path, steps: int | None, batch: int | None, frames: int | None,
            lr: float | None, init: str | None, decay: float | None,
            max_frame_index: int | None, self_context: float, self_context_t: float,
            offset_prob: float | None, seed: int, threads: int, progress: bool,
            ) -> None:  # fmt: skip
    """Train the `tiny` preset from scratch (or from --init weights) with the recipe of
    the bundled model (teacher-forced per-frame flow matching, EMA) and write its weights
    to OUT."""
    from pomexport.models.train_demo import TrainConfig, check_weights_out, train

    check_weights_out(out)
    given = {"steps": steps, "batch": batch, "frames": frames, "lr": lr, "decay": decay,
             "max_frame_index": max_frame_index, "offset_prob": offset_prob}  # fmt: skip
    overrides = {k: v for k, v in given.items() if v is not None}
    cfg = TrainConfig(seed=seed, threads=threads, init=init, self_context=self_context,
                      self_context_t=self_context_t, **overrides)  # fmt: skip
    train(cfg, out, progress=progress)
    click.echo(f"wrote {out}")
