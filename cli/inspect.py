"""``pomexport inspect``: IO contract, ops, precision mix, sizes and the TensorRT lint."""

from __future__ import annotations

import json

import click

from pomexport.cli import _options as o


@click.command("inspect")
@click.argument("artifact", type=click.Path(path_type=str))
@o.json_option("Print the full report as JSON.")
@click.option(
    "--strict", is_flag=True, help="Exit with status 1 when the TensorRT lint finds errors."
)
@click.option(
    "--trt",
    "trt_versions",
    multiple=True,
    default=("10.3", "11"),
    show_default=True,
    help="TensorRT version(s) to lint against (repeat the option for several).",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=None,
    help="Batch for the FLOP estimate [default: the artifact's opt batch, or 1].",
)
def command(
    artifact: str, as_json: bool, strict: bool, trt_versions: tuple[str, ...], batch: int | None
) -> None:
    """Inspect ARTIFACT (an artifact directory or a .onnx file): IO contract, op histogram,
    precision mix (share of MatMul/Gemm/Conv FLOPs per dtype), file sizes, and a lint against
    TensorRT's ONNX operator support."""
    from pomexport.export.inspect import inspect_artifact

    report = inspect_artifact(artifact, trt_versions=trt_versions, batch=batch)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text())
    if strict and not report.lint_ok:
        errors = sum(len(lint.errors) for lint in report.lint.values())
        raise click.ClickException(f"TensorRT lint: {errors} error(s) (--strict)")
