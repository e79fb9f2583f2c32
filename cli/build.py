"""``pomexport build``: export a model to a deployable artifact (+ TensorRT engine where
TensorRT and a GPU are available). A thin layer over :func:`pomexport.export.pipeline.build`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.export.artifact.layout import PRECISIONS

_BACKENDS = ("auto", "trt", "ort")


@click.command("build")
@o.model_argument()
@o.precision_option(PRECISIONS, "fp16",
    "Precision baked into the ONNX graph (the engine is built strongly typed from it); "
    "int8 calibrates on the model's own sampling trajectories (options: pomexport calibrate).",
)  # fmt: skip
@o.option("--backend", type=click.Choice(_BACKENDS), default="auto",
    help="trt: also build the TensorRT engine (needs TensorRT and a GPU); ort: the ONNX "
    "Runtime artifact only; auto: trt where possible, else ort.",
)  # fmt: skip
@o.out_option("Artifact directory  [default: build/<model>]")
@o.batch_option("MIN:OPT:MAX rows of the dynamic batch (streams, x2 with CFG); N: fixed.")
@o.option("--workspace-mb", type=click.IntRange(min=1), default=None,
    help="Cap of the TensorRT builder's workspace memory in MiB (Jetson: shared memory).",
)  # fmt: skip
@o.option("--plugin-library", type=click.Path(exists=True, dir_okay=False), default=None,
    help="libpomexport_plugins.so to ship in the artifact (plugins/, sha256 in the manifest); "
    "TensorRT engines are then built from the plugin flavor.",
)  # fmt: skip
@o.sign_option("Ed25519 private key (pomexport keygen) signing the manifest (manifest.sig).")
@o.decoder_option("Autoencoder folder written by diffusers' save_pretrained (AutoencoderKL, "
    "AutoencoderTiny, AutoencoderKLWan): its decoder joins the artifact (decoder/) at the "
    "build's precision (int8 builds: fp16), and generate writes decoded RGB.")  # fmt: skip
def command(model: str, precision: str, backend: str, out: str | None,
            batch: tuple[int, int, int], workspace_mb: int | None, plugin_library: str | None,
            sign_key: str | None, decoder: str | None) -> None:  # fmt: skip
    """Build MODEL (bundled name, preset or weights file; default: the bundled
    pom-dit-video-tiny) into an artifact directory: model.onnx (portable, for ONNX Runtime
    and TensorRT), model.plugin.onnx (TensorRT with the PolyMixer plugin), manifest.json."""
    from pomexport.export.artifact.options import default_artifact_dir
    from pomexport.export.pipeline import build

    result = build(
        model,
        out or default_artifact_dir(model),
        precision,
        backend,
        batch,
        progress=lambda m: click.echo(m, err=True),
        workspace_mb=workspace_mb,
        plugin_library=plugin_library,
        sign_key=sign_key,
        decoder=decoder,
    )
    click.echo(result.summary)
