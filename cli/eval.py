"""``pomexport eval``: score generated bouncing-shapes clips against real ones.
A thin layer over :mod:`pomexport.runtime.measure.long_horizon`."""

from __future__ import annotations

import json

import click

from pomexport.cli import _options as o

_COLUMNS = ("single_blob", "jerk", "consistency")
_SKIP = "Generate SKIP more frames first and score only the last FRAMES (long clips)."
_CURVE = (
    "Long-horizon curve: generate N frames per clip and score every FRAMES-frame window "
    "(1..16, 17..32, ...) as it completes, in flat memory; MODELS may also be artifact "
    "directories (run on their best backend)."
)


@click.command("eval")
@click.argument("models", nargs=-1)
@o.option("--clips", type=int, default=64, help="Clips per model.")
@o.frames_option(16, "Frames scored per clip.")
@o.option("--skip", type=int, default=0, help=_SKIP)
@o.steps_option(20)
@o.cfg_option(2.0)
@o.seed_option()
@o.json_option()
@o.option("--curve", type=int, default=None, metavar="N", help=_CURVE)
@o.out_option("With --curve: writes OUT.json and OUT.png (one line per model, real dashed).",
              default="quality_curve")  # fmt: skip
@o.progress_option("With --curve.")
def command(models: tuple[str, ...], clips: int, frames: int, skip: int, steps: int,
            cfg_scale: float, seed: int, as_json: bool, curve: int | None, out: str,
            progress: bool) -> None:  # fmt: skip
    """Score MODELS (default: the bundled pom-dit-video-tiny; a preset such as `tiny` is a
    random-init baseline) on bouncing-shapes clips, frame by frame with the state, next to
    real clips: (a) single_blob: frames with exactly one blob of the label's shape and
    colour; (b) jerk: mean |second difference| of the blob centroid (px); (c) consistency:
    consecutive frames keeping one blob of the same shape/colour/area that moves <= 2.5 px.
    """
    from pomexport.runtime.measure import long_horizon as lh

    models = models or (o.DEFAULT_MODEL,)
    sampled = {"clips": clips, "steps": steps, "cfg_scale": cfg_scale, "seed": seed}
    settings = lh.EvalSettings(frames=frames, skip=skip, **sampled)
    if curve is not None:
        given = lh.CurveSettings(frames=curve, window=frames, **sampled)
        lh.curve_paths(out)  # before the curve, not after
        report = lh.quality_curve(models, given, progress)
        json_path, png_path = lh.write_curve(report, out)
        last = {name: windows[-1] for name, windows in report["curves"].items()}
        _table(last, "   (last window)")
        click.echo(f"wrote {json_path} and {png_path}")
        return
    rows = lh.quality_table(models, settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(
        f"{clips} clips, frames {skip + 1}-{skip + frames}, {steps} Euler steps, cfg {cfg_scale}"
    )
    _table(rows)


def _table(rows: dict[str, dict], note: str = "") -> None:
    click.echo(f"{'':<24}" + "".join(f"{c:>13}" for c in _COLUMNS) + note)
    for name, row in rows.items():
        click.echo(f"{name:<24}" + "".join(f"{row[c]:>13.3f}" for c in _COLUMNS))
