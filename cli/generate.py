"""``pomexport generate``: generate a clip frame by frame and write gif/png/npy/mp4 (decoded
RGB when the artifact has a decoder stage or ``--decoder`` names one for a model).

The source is a model (bundled name, preset, weights file: torch) or a built artifact
directory (ONNX Runtime); ``--backend auto`` picks the best backend for it and says which.
A thin layer over :func:`pomexport.runtime.clip.generate_clip`.
"""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.runtime.choices import BACKENDS

_BACKEND = (
    "torch runs a model; ort (CPU), ort-cuda, ort-trt run an artifact. auto: ort-cuda if "
    "onnxruntime-gpu and a GPU are here, else ort, for an artifact; torch for a model."
)
_OUT = "Output: .gif, .mp4, .npy (latents) or .png (one file per frame)."


@click.command("generate")
@o.model_argument()
@o.frames_option(16, "Frames per clip.")
@o.sampler_options(steps=20, cfg=2.0)
@o.option("--label", "-l", "labels", type=int, multiple=True,
          help="Class label; repeat for several streams in one batch.  [default: 0]")  # fmt: skip
@o.backend_options(BACKENDS, _BACKEND)
@o.out_option(_OUT, default="clip.gif")
@o.option("--scale", type=int, default=None,
          help="Integer nearest-neighbour upscale  [default: frames >= 256 px]")  # fmt: skip
@o.option("--fps", type=float, default=8.0, help="Frames per second of a .gif or .mp4.")
@o.option("--lossless", is_flag=True,
          help="An .mp4 whose frames decode bit-exact (RGB H.264 at qp 0, libx264rgb): "
          "larger files, and some players cannot show them.")  # fmt: skip
@o.progress_option()
@o.trusted_key_option("an artifact's manifest")
@o.decoder_option("Autoencoder folder (diffusers save_pretrained) decoding a model's latents "
    "on torch; an artifact carries its own (pomexport build --decoder).")  # fmt: skip
def command(model: str, frames: int, steps: int, cfg_scale: float, seed: int, sampler: str,
            shift: float, labels: tuple[int, ...], backend: str, device: str, out: str,
            scale: int | None, fps: float, lossless: bool, progress: bool, trusted: tuple[str, ...],
            decoder: str | None) -> None:  # fmt: skip
    """Generate a video with MODEL: an artifact directory from `pomexport build` (run by
    ONNX Runtime), or a bundled name, preset such as `tiny`, or weights file (run by torch;
    default: the bundled pom-dit-video-tiny). One stream per --label, all in one batch; the
    same --seed gives the same noise on every backend."""
    from pomexport.runtime.options import GenerateOptions, SamplerSettings
    from pomexport.runtime.outputs import check_output_path

    # Options and the output path first: torch-free, so a refusal takes no import time.
    sampling = SamplerSettings(steps, cfg_scale, seed, sampler, shift)
    options = GenerateOptions(frames, labels, sampling, scale, fps, lossless)
    check_output_path(out)
    o.use_trusted(trusted)
    from pomexport.runtime.clip import generate_clip

    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    result = generate_clip(
        model, out, options, backend, device, bar=progress, log=echo, decoder=decoder
    )
    click.echo(result.summary)
