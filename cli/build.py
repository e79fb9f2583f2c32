"""``pomexport build``: export a model to a deployable artifact (+ TensorRT engine where
TensorRT and a GPU are available). A thin layer over :func:`pomexport.export.pipeline.build`."""

from __future__ import annotations

import click

from pomexport.errors import ConfigError

_PRECISIONS = ("fp32", "fp16", "int8")  # export/pipeline.py's PRECISIONS, without torch
_BACKENDS = ("auto", "trt", "ort")


def _batch(value: str) -> tuple[int, int, int]:
    try:
        lo, opt, hi = (int(v) for v in value.split(":"))
    except ValueError as e:
        raise ConfigError(f"--batch takes MIN:OPT:MAX (e.g. 1:1:8), got {value!r}") from e
    if not 1 <= lo <= opt <= hi:
        raise ConfigError(f"--batch must satisfy 1 <= MIN <= OPT <= MAX, got {value}")
    return lo, opt, hi


@click.command("build")
@click.argument("model", required=False, default="pom-dit-video-tiny")
@click.option(
    "--precision", type=click.Choice(_PRECISIONS), default="fp16", show_default=True,
    help="Precision baked into the ONNX graph (the engine is built strongly typed from it); "
    "int8 calibrates on the model's own sampling trajectories (options: pomexport calibrate).",
)  # fmt: skip
@click.option(
    "--backend", type=click.Choice(_BACKENDS), default="auto", show_default=True,
    help="trt: also build the TensorRT engine (needs TensorRT and a GPU); ort: the ONNX "
    "Runtime artifact only; auto: trt where possible, else ort.",
)  # fmt: skip
@click.option("--out", "-o", default=None, help="Artifact directory  [default: build/<model>]")
@click.option(
    "--batch", default="1:1:8", show_default=True,
    help="MIN:OPT:MAX rows of the dynamic batch (streams, x2 with CFG).",
)  # fmt: skip
@click.option(
    "--workspace-mb", type=click.IntRange(min=1), default=None,
    help="Cap of the TensorRT builder's workspace memory in MiB (Jetson: shared memory).",
)  # fmt: skip
@click.option(
    "--plugin-library", type=click.Path(exists=True, dir_okay=False), default=None,
    help="libpomexport_plugins.so to ship in the artifact (plugins/, sha256 in the manifest); "
    "TensorRT engines are then built from the plugin flavor.",
)  # fmt: skip
@click.option(
    "--sign", "sign_key", type=click.Path(dir_okay=False), default=None,
    help="Ed25519 private key (pomexport keygen) signing the manifest (manifest.sig).",
)  # fmt: skip
def command(
    model: str,
    precision: str,
    backend: str,
    out: str | None,
    batch: str,
    workspace_mb: int | None,
    plugin_library: str | None,
    sign_key: str | None,
) -> None:
    """Build MODEL (bundled name, preset or weights file; default: the bundled
    pom-dit-video-tiny) into an artifact directory: model.onnx (portable, for ONNX Runtime
    and TensorRT), model.plugin.onnx (TensorRT with the PolyMixer plugin), manifest.json."""
    from pathlib import Path

    from pomexport.export.pipeline import build

    rows = _batch(batch)
    name = Path(model).stem if model.endswith(".safetensors") else model.replace("/", "-")
    target = out or str(Path("build") / name)
    result = build(
        model,
        target,
        precision,
        backend,
        rows,
        progress=lambda m: click.echo(m, err=True),
        workspace_mb=workspace_mb,
        plugin_library=plugin_library,
        sign_key=sign_key,
    )
    click.echo(result.summary)
