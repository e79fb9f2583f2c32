"""``pomexport export``: a model -> an artifact directory (ONNX step graph + manifest)."""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.cli._output import timed

__all__ = ["command", "parse_batch"]


def parse_batch(text: str) -> tuple[int, int, int]:
    """``MIN:OPT:MAX`` (or one number for a fixed batch) -> (min, opt, max): the library's
    :func:`pomexport.export.artifact.options.parse_batch`, kept here for its callers."""
    from pomexport.export.artifact.options import parse_batch

    return parse_batch(text)


@click.command("export")
@o.model_argument()
@o.precision_option(("fp32", "fp16"), "fp32")
@o.option("--flavor", type=click.Choice(["portable", "plugin", "both"]), default="both",
          help="portable: PolyMixer node + its ONNX function; plugin: node for the TensorRT "
          "plugin.")  # fmt: skip
@o.option("--opset", type=int, default=18, help="Default-domain opset.")
@o.batch_option()
@o.out_option("Artifact directory  [default: build/<model>-<precision>]")
def command(model: str, precision: str, flavor: str, opset: int, batch: tuple[int, int, int],
            out: str | None) -> None:  # fmt: skip
    """Export MODEL's denoising step to an ONNX artifact directory.

    MODEL is the bundled model (default: pom-dit-video-tiny), a preset (tiny, S/2 ... XL/8,
    random weights) or a weights file. The graph has the state as explicit I/O
    (x_t, t, label, frame_index, state, count -> v, state_out) and a dynamic batch.
    """
    from pomexport.export.api import export_model
    from pomexport.export.artifact.options import default_artifact_dir

    out = out or default_artifact_dir(model, precision)
    artifact = export_model(model, out, precision, flavor, opset, batch, progress=timed())
    click.echo(
        f"{artifact.root}  ({artifact.model_name}, {artifact.precision}, {artifact.variant})"
    )
    for name, entry in artifact.files.items():
        click.echo(
            f"  {name:<24} {entry['bytes'] / 2**20:10.1f} MiB  sha256 {entry['sha256'][:12]}"
        )
