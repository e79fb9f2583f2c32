"""A clip file from a model or an artifact in one call: ``pomexport generate`` as a function.

:func:`generate_clip` checks the options and the output before anything is loaded, picks the
backend (``auto``: the best one here, and says why), refuses labels the model does not have
and a clip its writer cannot hold, then streams the frames into the writer as they are made
(flat memory for any number of frames).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pomexport.runtime.options import GenerateOptions
from pomexport.runtime.outputs import check_output_capacity, check_output_path

logger = logging.getLogger(__name__)

__all__ = ["ClipResult", "generate_clip"]


@dataclass(frozen=True)
class ClipResult:
    """What :func:`generate_clip` wrote, on what, and how fast."""

    files: list[Path]
    options: GenerateOptions
    backend: str
    device: str
    seconds: float
    decoded: str = ""  # the decoder and the RGB frames per stream ("": latents written)

    @property
    def summary(self) -> str:
        """One line: files, streams x frames, steps, backend, time and frames/s."""
        o = self.options
        more = f" (+{len(self.files) - 1} more)" if len(self.files) > 1 else ""
        made = len(o.labels) * o.frames
        return (
            f"wrote {self.files[0]}{more}: {len(o.labels)} stream(s) x {o.frames} frames, "
            f"{o.sampling.steps} {o.sampling.sampler} steps, {self.backend} on {self.device}, "
            f"{self.seconds:.1f} s ({made / self.seconds:.2f} frames/s){self.decoded}"
        )


def generate_clip(
    source: str | os.PathLike,
    out: str | os.PathLike,
    options: GenerateOptions | None = None,
    backend: str = "auto",
    device: str = "auto",
    bar: bool = False,
    log: Callable[[str], None] | None = None,
    decoder: str | os.PathLike | None = None,
) -> ClipResult:
    """Generate ``options`` (default: :class:`GenerateOptions`) with ``source`` — an
    artifact directory (ONNX Runtime / TensorRT) or a bundled name, preset or weights file
    (torch) — into ``out`` (.gif, .mp4, .npy, or .png per frame). ``log`` gets the line
    naming the backend picked and why; ``bar`` shows a progress bar.

    An artifact with a decoder stage (``pomexport build --decoder``), or a model with
    ``decoder`` (a diffusers ``save_pretrained`` folder, decoded on torch), writes RGB frames
    decoded as each latent frame is committed (``runtime/decoding.py``); without one the
    model's latents are written, and a latent model (not 3 channels) says so in ``log``."""
    from pomexport.runtime.api import generate_frames
    from pomexport.runtime.decoding import decode_frames, load_decoder
    from pomexport.runtime.loading import choose_backend, load_backend
    from pomexport.runtime.writers import check_lossless, open_video

    options = options or GenerateOptions()
    path = check_lossless(check_output_path(out), options.lossless)  # before any loading
    say = log or logger.info
    choice = choose_backend(source, backend, device)
    runner = load_backend(source, backend=choice.backend, device=device)
    cfg = runner.config
    options.check_labels(cfg.num_classes, source)
    rgb = load_decoder(runner, decoder)
    frames, shape = _output_frames(rgb, cfg, options.frames)
    check_output_capacity(path, frames, len(options.labels), shape, options.scale)
    say(f"backend: {runner.name} on {runner.device} ({choice.reason})")
    line = _decoding_line(rgb, cfg, source, path, options.frames, frames)
    if line is not None:
        say(line)
    start = time.perf_counter()
    made = generate_frames(runner, options.labels, options.frames, **options.sampling.as_kwargs())
    if rgb is not None:
        made = decode_frames(made, rgb)
    sink = open_video(path, frames, options.scale, options.fps, shape[1], options.lossless)
    with sink:
        for frame in _bar(made, frames, bar):
            sink.write(frame)
        written = sink.close()
    seconds = time.perf_counter() - start
    decoded = "" if rgb is None else f", decoded to {frames} RGB frames each by {rgb.name}"
    return ClipResult(written, options, runner.name, str(runner.device), seconds, decoded)


def _output_frames(rgb, cfg, latent_frames: int) -> tuple[int, tuple[int, int, int]]:
    """(frames per stream, (C, H, W) of one) the writer gets: decoded RGB or the latents."""
    if rgb is None:
        return latent_frames, (cfg.in_channels, cfg.input_size, cfg.input_size)
    return rgb.rgb_frames(latent_frames), tuple(rgb.rgb_shape)


def _decoding_line(rgb, cfg, source, path: Path, latent_frames: int, frames: int) -> str | None:
    """What is written: decoded RGB, or a latent model's latents (said once, in one line)."""
    if rgb is not None:
        return f"decoder: {rgb.name}, {latent_frames} latent frames -> {frames} RGB frames"
    if cfg.in_channels == 3:
        return None  # a pixel-space model (the bundled one): its frames are RGB
    view = "every channel" if path.suffix.lower() == ".npy" else "a view of the first 3"
    return (
        f"no decoder: {source} writes its {cfg.in_channels}-channel latents to {path.name} "
        f"({view}); for RGB give it an autoencoder folder: build --decoder DIR (artifact), "
        "generate --decoder DIR (model)"
    )


def _bar(frames, total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(frames, total=total, disable=not show, unit="frame", desc="generate")
