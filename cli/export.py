"""``pomexport export``: a model -> an artifact directory (ONNX step graph + manifest)."""

from __future__ import annotations

import time

import click

from pomexport.errors import ConfigError


def parse_batch(text: str) -> tuple[int, int, int]:
    """``MIN:OPT:MAX`` (or one number for a fixed batch) -> (min, opt, max)."""
    parts = text.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ConfigError(f"--batch wants MIN:OPT:MAX (e.g. 1:1:8), got {text!r}")
    return values[0], values[1], values[2]


def _default_out(model: str, precision: str) -> str:
    return f"{model.replace('/', '_').replace('.safetensors', '')}-{precision}"


@click.command("export")
@click.argument("model", required=False)
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option(
    "--flavor",
    type=click.Choice(["portable", "plugin", "both"]),
    default="both",
    show_default=True,
    help="portable: PolyMixer node + its ONNX function; plugin: node for the TensorRT plugin.",
)
@click.option("--opset", type=int, default=18, show_default=True, help="Default-domain opset.")
@click.option("--batch", default="1:1:8", show_default=True, help="Batch range MIN:OPT:MAX.")
@click.option("--out", "out_dir", default=None, help="Artifact directory [MODEL-PRECISION].")
def command(
    model: str | None, precision: str, flavor: str, opset: int, batch: str, out_dir: str | None
) -> None:
    """Export MODEL's denoising step to an ONNX artifact directory.

    MODEL is the bundled model (default: pom-dit-video-tiny), a preset (tiny, S/2 ... XL/8,
    random weights) or a weights file. The graph has the state as explicit I/O
    (x_t, t, label, frame_index, state, count -> v, state_out) and a dynamic batch.
    """
    from pomexport.export.api import export_model
    from pomexport.models.registry import DEFAULT_MODEL

    model = model or DEFAULT_MODEL
    batch_range = parse_batch(batch)
    out = out_dir or _default_out(model, precision)
    start = time.monotonic()

    def progress(message: str) -> None:
        click.echo(f"[{time.monotonic() - start:6.1f}s] {message}", err=True)

    artifact = export_model(model, out, precision, flavor, opset, batch_range, progress=progress)
    click.echo(
        f"{artifact.root}  ({artifact.model_name}, {artifact.precision}, {artifact.variant})"
    )
    for name, entry in artifact.files.items():
        click.echo(
            f"  {name:<24} {entry['bytes'] / 2**20:10.1f} MiB  sha256 {entry['sha256'][:12]}"
        )
