"""``pomexport calibrate``: calibrate MODEL on real sampling trajectories into an int8 artifact.
A thin layer over :func:`pomexport.calibration.calibrate`."""

from __future__ import annotations

import time

import click

_METHODS = ("minmax", "percentile", "entropy")  # calibration/calibrators.py, without numpy


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    from pomexport.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from e


@click.command("calibrate")
@click.argument("model", required=False, default="pom-dit-video-tiny")
@click.option(
    "--samples",
    type=int,
    default=256,
    show_default=True,
    help="Cap on recorded step rows (uniform reservoir sample of the trajectories).",
)
@click.option(
    "--method",
    type=click.Choice(_METHODS),
    default="percentile",
    show_default=True,
    help="Activation range calibrator (weights are always per-channel max). entropy "
    "(TensorRT's KL) clips the long GELU tails of transformer MLPs: measured worse here.",
)
@click.option("--out", "-o", default=None, help="Artifact directory  [default: build/<model>-int8]")
@click.option(
    "--labels", default=None, help="Comma-separated labels [default: spread over classes]."
)
@click.option("--seeds", default="0,1", show_default=True, help="Comma-separated noise seeds.")
@click.option("--frames", type=int, default=4, show_default=True, help="Frames per stream.")
@click.option("--steps", type=int, default=8, show_default=True, help="Denoising steps per frame.")
@click.option(
    "--cfg-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Classifier-free guidance of the sampled trajectories.",
)
@click.option(
    "--keep-float",
    type=int,
    default=0,
    show_default=True,
    help="Run the sensitivity sweep and keep this many worst layers in float.",
)
@click.option("--sweep", is_flag=True, help="Run the sensitivity sweep for the report only.")
@click.option(
    "--calibration-set",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Use this .npz calibration set instead of capturing one.",
)
@click.option(
    "--save-set",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write the captured calibration set (.npz) here.",
)
@click.option("--batch", default="1:1:8", show_default=True, help="Batch range MIN:OPT:MAX.")
def command(model: str, samples: int, method: str, out: str | None, labels: str | None,
            seeds: str, frames: int, steps: int, cfg_scale: float, keep_float: int, sweep: bool,
            calibration_set: str | None, save_set: str | None, batch: str) -> None:  # fmt: skip
    """Calibrate MODEL (bundled name, preset or weights file) on its own sampling
    trajectories and write the int8 artifact: model.onnx / model.plugin.onnx with symmetric
    int8 Q/DQ (TensorRT), model.ort-cpu.onnx with uint8 activations (ONNX Runtime CPU), and
    calibration.json / calibration.txt (per-layer scales, clipped fraction, sensitivity)."""
    from pathlib import Path

    from pomexport.calibration import CalibrationOptions, CaptureSettings
    from pomexport.cli.export import parse_batch
    from pomexport.export.pipeline import calibrate

    settings = CaptureSettings(
        labels=_ints(labels, "--labels"), seeds=_ints(seeds, "--seeds") or (), frames=frames,
        steps=steps, cfg_scale=cfg_scale, samples=samples,
    )  # fmt: skip
    options = CalibrationOptions(method, settings, keep_float, sweep, calibration_set, save_set)
    target = out or str(Path("build") / f"{model.replace('/', '-')}-int8")
    start = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=True)

    artifact = calibrate(model, target, options, parse_batch(batch), progress)
    click.echo((artifact.root / "calibration.txt").read_text(), nl=False)
    click.echo(f"wrote {artifact.root} (int8; flavors: {', '.join(artifact.flavors)})")
