"""``pomexport generate``: generate a clip frame by frame and write gif/png/npy/mp4.

The source is a model (bundled name, preset, weights file: torch) or a built artifact
directory (ONNX Runtime); ``--backend auto`` picks the best backend for it and says which.
"""

from __future__ import annotations

import time

import click

from pomexport.cli._options import trusted_key_option
from pomexport.errors import ConfigError
from pomexport.runtime.choices import BACKENDS, DEVICES, SAMPLERS


@click.command("generate")
@click.argument("model", required=False, default="pom-dit-video-tiny")
@click.option("--frames", "-n", type=int, default=16, show_default=True, help="Frames per clip.")
@click.option("--steps", "-s", type=int, default=20, show_default=True, help="Denoising steps.")
@click.option(
    "--cfg",
    "cfg_scale",
    type=float,
    default=2.0,
    show_default=True,
    help="Classifier-free guidance scale (1 = off).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option(
    "--label",
    "-l",
    "labels",
    type=int,
    multiple=True,
    help="Class label; repeat for several streams in one batch.  [default: 0]",
)
@click.option("--sampler", type=click.Choice(SAMPLERS), default="euler", show_default=True)
@click.option(
    "--shift",
    type=float,
    default=1.0,
    show_default=True,
    help="Time-schedule shift (SD3-style; 1 = uniform).",
)
@click.option(
    "--backend",
    type=click.Choice(("auto", *BACKENDS)),
    default="auto",
    show_default=True,
    help="torch runs a model; ort (CPU), ort-cuda, ort-trt run an artifact. auto: ort-cuda "
    "if onnxruntime-gpu and a GPU are here, else ort, for an artifact; torch for a model.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--out",
    "-o",
    default="clip.gif",
    show_default=True,
    help="Output: .gif, .mp4, .npy (latents) or .png (one file per frame).",
)
@click.option(
    "--scale",
    type=int,
    default=None,
    help="Integer nearest-neighbour upscale  [default: frames >= 256 px]",
)
@click.option("--fps", type=float, default=8.0, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
@trusted_key_option("an artifact's manifest")
def command(
    model: str,
    frames: int,
    steps: int,
    cfg_scale: float,
    seed: int,
    labels: tuple[int, ...],
    sampler: str,
    shift: float,
    backend: str,
    device: str,
    out: str,
    scale: int | None,
    fps: float,
    progress: bool,
    trusted: tuple[str, ...],
) -> None:
    """Generate a video with MODEL: an artifact directory from `pomexport build` (run by
    ONNX Runtime), or a bundled name, preset such as `tiny`, or weights file (run by torch;
    default: the bundled pom-dit-video-tiny). One stream per --label, all in one batch; the
    same --seed gives the same noise on every backend."""
    from pomexport.runtime.outputs import check_output_capacity, check_output_path

    # Options and the output path first: torch-free, so a refusal takes no import time.
    _check_options(frames, steps, seed, scale, fps, shift)
    path = check_output_path(out)
    if trusted:
        from pomexport.export.artifact.signing import use_trusted_keys

        use_trusted_keys(trusted)
    from pomexport.runtime.api import generate_frames
    from pomexport.runtime.loading import choose_backend, load_backend
    from pomexport.runtime.writers import open_video

    labels = labels or (0,)
    choice = choose_backend(model, backend, device)
    runner = load_backend(model, backend=choice.backend, device=device)
    n = runner.config.num_classes
    bad = [label for label in labels if not 0 <= label < n]
    if bad:
        raise ConfigError(f"label {bad[0]} out of range [0, {n}) for model {model}")
    cfg = runner.config
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    check_output_capacity(path, frames, len(labels), shape, scale)  # before generating
    click.echo(f"backend: {runner.name} on {runner.device} ({choice.reason})", err=True)
    start = time.perf_counter()
    # Frames go to the writer as they are made: memory stays flat for any --frames.
    with open_video(path, frames, scale, fps, runner.config.input_size) as sink:
        made = generate_frames(
            runner, labels, frames, steps, cfg_scale, seed, sampler, shift, progress=False
        )
        for frame in _bar(made, frames, progress):
            sink.write(frame)
        written = sink.close()
    elapsed = time.perf_counter() - start
    more = f" (+{len(written) - 1} more)" if len(written) > 1 else ""
    click.echo(
        f"wrote {written[0]}{more}: {len(labels)} stream(s) x {frames} frames, {steps} "
        f"{sampler} steps, {runner.name} on {runner.device}, {elapsed:.1f} s "
        f"({len(labels) * frames / elapsed:.2f} frames/s)"
    )


def _bar(frames, total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(frames, total=total, disable=not progress, unit="frame", desc="generate")


def _check_options(frames, steps, seed, scale, fps, shift) -> None:
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    if steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    if scale is not None and scale < 1:
        raise ConfigError(f"--scale must be >= 1, got {scale}")
    if fps <= 0:
        raise ConfigError(f"--fps must be > 0, got {fps}")
    if shift <= 0:
        raise ConfigError(f"--shift must be > 0, got {shift}")
