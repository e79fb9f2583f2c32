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
@click.option(
    "--curve",
    type=int,
    default=None,
    metavar="N",
    help="Long-horizon curve: generate N frames per clip and score every FRAMES-frame "
    "window (1..16, 17..32, ...) as it completes, in flat memory; MODELS may also be "
    "artifact directories (run on their best backend).",
)
@click.option(
    "--out",
    "-o",
    default="quality_curve",
    show_default=True,
    help="With --curve: writes OUT.json and OUT.png (one line per model, real dashed).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="With --curve.")
def command(
    models: tuple[str, ...],
    clips: int,
    frames: int,
    skip: int,
    steps: int,
    cfg_scale: float,
    seed: int,
    as_json: bool,
    curve: int | None,
    out: str,
    progress: bool,
) -> None:
    """Score MODELS (default: the bundled pom-dit-video-tiny; a preset such as `tiny` is a
    random-init baseline) on bouncing-shapes clips, frame by frame with the state, next to
    real clips: (a) single_blob: frames with exactly one blob of the label's shape and
    colour; (b) jerk: mean |second difference| of the blob centroid (px); (c) consistency:
    consecutive frames keeping one blob of the same shape/colour/area that moves <= 2.5 px.
    """
    from pomexport.models import load_model
    from pomexport.models.quality import check_scorable, evaluate_real
    from pomexport.runtime.measure.long_horizon import evaluate_model

    if clips < 1 or frames < 2 or skip < 0 or steps < 1:
        raise ConfigError("need --clips >= 1, --frames >= 2, --skip >= 0 and --steps >= 1")
    if curve is not None:
        given = dict(clips=clips, window=frames, steps=steps, cfg=cfg_scale, seed=seed)
        _curve(models, curve, out, progress, **given)
        return
    rows = {"real": evaluate_real(clips, frames, seed, skip).to_dict()}
    for name in models or ("pom-dit-video-tiny",):
        model = load_model(name)
        check_scorable(name, model.cfg)
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


def _curve(models: tuple[str, ...], total: int, out: str, progress: bool, **given) -> None:
    from pathlib import Path

    from pomexport.export.artifact.atomic import atomic_write
    from pomexport.runtime.measure.long_horizon import CurveSettings, quality_curve
    from pomexport.runtime.measure.plots import plot_curve

    if total < given["window"]:
        raise ConfigError(
            f"--curve {total} is shorter than one window (--frames {given['window']})"
        )
    prefix = Path(out)
    if not prefix.parent.is_dir():
        raise ConfigError(f"output folder does not exist: {prefix.parent}")
    settings = CurveSettings(
        clips=given["clips"], frames=total, window=given["window"], steps=given["steps"],
        cfg_scale=given["cfg"], seed=given["seed"],
    )  # fmt: skip
    report = quality_curve(models or ("pom-dit-video-tiny",), settings, progress)
    text = json.dumps(report, indent=1) + "\n"
    json_path, png_path = prefix.with_suffix(".json"), prefix.with_suffix(".png")
    atomic_write(json_path, lambda tmp: tmp.write_text(text))
    plot_curve(report, png_path)
    click.echo(f"{'':<24}" + "".join(f"{c:>13}" for c in _COLUMNS) + "   (last window)")
    for name, windows in report["curves"].items():
        row = windows[-1]
        click.echo(f"{name:<24}" + "".join(f"{row[c]:>13.3f}" for c in _COLUMNS))
    click.echo(f"wrote {json_path} and {png_path}")
