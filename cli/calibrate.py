"""``pomexport calibrate``: calibrate MODEL on real sampling trajectories into an int8 artifact.
A thin layer over :func:`pomexport.export.pipeline.calibrate`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.cli._output import timed
from pomexport.export.artifact.layout import CALIBRATION_METHODS

_SAMPLES = "Cap on recorded step rows (uniform reservoir sample of the trajectories)."
_METHOD = (
    "Activation range calibrator (weights are always per-channel max). entropy (TensorRT's "
    "KL) clips the long GELU tails of transformer MLPs: measured worse here."
)


@click.command("calibrate")
@o.model_argument()
@o.option("--samples", type=int, default=256, help=_SAMPLES)
@o.option("--method", type=click.Choice(CALIBRATION_METHODS), default="percentile", help=_METHOD)
@o.out_option("Artifact directory  [default: build/<model>-int8]")
@o.ints_option("--labels", None, "Comma-separated labels [default: spread over classes].")
@o.ints_option("--seeds", "0,1", "Comma-separated noise seeds.")
@o.frames_option(4, "Frames per stream.")
@o.steps_option(8, "Denoising steps per frame.")
@o.cfg_option(1.0, "Classifier-free guidance of the sampled trajectories.")
@o.option("--keep-float", type=int, default=0,
          help="Run the sensitivity sweep and keep this many worst layers in float.")  # fmt: skip
@o.option("--sweep", is_flag=True, help="Run the sensitivity sweep for the report only.")
@o.option("--calibration-set", type=click.Path(exists=True, dir_okay=False), default=None,
          help="Use this .npz calibration set instead of capturing one.")  # fmt: skip
@o.option("--save-set", type=click.Path(dir_okay=False), default=None,
          help="Also write the captured calibration set (.npz) here.")  # fmt: skip
@o.batch_option()
def command(model: str, samples: int, method: str, out: str | None,
            labels: tuple[int, ...] | None, seeds: tuple[int, ...], frames: int, steps: int,
            cfg_scale: float, keep_float: int, sweep: bool, calibration_set: str | None,
            save_set: str | None, batch: tuple[int, int, int]) -> None:  # fmt: skip
    """Calibrate MODEL (bundled name, preset or weights file) on its own sampling
    trajectories and write the int8 artifact: model.onnx / model.plugin.onnx with symmetric
    int8 Q/DQ (TensorRT), model.ort-cpu.onnx with uint8 activations (ONNX Runtime CPU), and
    calibration.json / calibration.txt (per-layer scales, clipped fraction, sensitivity)."""
    from pomexport.calibration import CalibrationOptions, CaptureSettings
    from pomexport.export.artifact.options import default_artifact_dir
    from pomexport.export.pipeline import calibrate

    settings = CaptureSettings(labels=labels, seeds=seeds, frames=frames, steps=steps,
                               cfg_scale=cfg_scale, samples=samples)  # fmt: skip
    options = CalibrationOptions(method, settings, keep_float, sweep, calibration_set, save_set)
    target = out or default_artifact_dir(model, "int8")
    artifact = calibrate(model, target, options, batch, timed())
    click.echo((artifact.root / "calibration.txt").read_text(), nl=False)
    click.echo(f"wrote {artifact.root} (int8; flavors: {', '.join(artifact.flavors)})")
