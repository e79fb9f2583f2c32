"""``pomexport eval``: score generated bouncing-shapes clips against real ones."""

from __future__ import annotations

import json

import click

from pomexport.errors import ConfigError

_COLUMNS = ("single_blob", "jerk", "consistency")


@click.command("eval")
@click.argument("models", nargs=-1)
@click.option("--clips", type=int, default=64, show_default=True, help="Clips per model.")
@click.option("--frames", type=int, default=16, show_default=True, help="Frames scored per clip.")
@click.option(
    "--skip",
    type=int,
    default=0,
    show_default=True,
    help="Generate SKIP more frames first and score only the last FRAMES (long clips).",
)
@click.option("--steps", type=int, default=20, show_default=True, help="Denoising steps.")
@click.option("--cfg", "cfg_scale", type=float, default=2.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def command(
    models: tuple[str, ...],
    clips: int,
    frames: int,
    skip: int,
    steps: int,
    cfg_scale: float,
    seed: int,
    as_json: bool,
) -> None:
    """Score MODELS (default: the bundled pom-dit-video-tiny; a preset such as `tiny` is a
    random-init baseline) on bouncing-shapes clips, frame by frame with the state, next to
    real clips: (a) single_blob: frames with exactly one blob of the label's shape and
    colour; (b) jerk: mean |second difference| of the blob centroid (px); (c) consistency:
    consecutive frames keeping one blob of the same shape/colour/area that moves <= 2.5 px.
    """
    from pomexport.models import load_model
    from pomexport.models.quality import evaluate_model, evaluate_real

    if clips < 1 or frames < 2 or skip < 0 or steps < 1:
        raise ConfigError("need --clips >= 1, --frames >= 2, --skip >= 0 and --steps >= 1")
    rows = {"real": evaluate_real(clips, frames, seed, skip).to_dict()}
    for name in models or ("pom-dit-video-tiny",):
        model = load_model(name)
        _check_model(name, model.cfg)
        report = evaluate_model(model, clips, frames, seed, skip, steps=steps, cfg_scale=cfg_scale)
        rows[name] = report.to_dict()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(
        f"{clips} clips, frames {skip + 1}-{skip + frames}, {steps} Euler steps, cfg {cfg_scale}"
    )
    click.echo(f"{'':<24}" + "".join(f"{c:>13}" for c in _COLUMNS))
    for name, row in rows.items():
        click.echo(f"{name:<24}" + "".join(f"{row[c]:>13.3f}" for c in _COLUMNS))


def _check_model(name: str, cfg) -> None:
    from pomexport.models.demo_data import NUM_CLASSES, SIZE

    if (cfg.input_size, cfg.in_channels, cfg.text_dim) != (SIZE, 3, 0) or (
        cfg.num_classes < NUM_CLASSES
    ):
        raise ConfigError(
            f"{name}: eval scores bouncing-shapes clips and needs a {SIZE}x{SIZE} RGB "
            f"class-conditional model with >= {NUM_CLASSES} classes"
        )
