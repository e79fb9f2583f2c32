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

    @property
    def summary(self) -> str:
        """One line: files, streams x frames, steps, backend, time and frames/s."""
        o = self.options
        more = f" (+{len(self.files) - 1} more)" if len(self.files) > 1 else ""
        made = len(o.labels) * o.frames
        return (
            f"wrote {self.files[0]}{more}: {len(o.labels)} stream(s) x {o.frames} frames, "
            f"{o.sampling.steps} {o.sampling.sampler} steps, {self.backend} on {self.device}, "
            f"{self.seconds:.1f} s ({made / self.seconds:.2f} frames/s)"
        )


def generate_clip(
    source: str | os.PathLike,
    out: str | os.PathLike,
    options: GenerateOptions | None = None,
    backend: str = "auto",
    device: str = "auto",
    bar: bool = False,
    log: Callable[[str], None] | None = None,
) -> ClipResult:
    """Generate ``options`` (default: :class:`GenerateOptions`) with ``source`` — an
    artifact directory (ONNX Runtime / TensorRT) or a bundled name, preset or weights file
    (torch) — into ``out`` (.gif, .mp4, .npy latents, or .png per frame). ``log`` gets the
    line naming the backend picked and why; ``bar`` shows a progress bar."""
    from pomexport.runtime.api import generate_frames
    from pomexport.runtime.loading import choose_backend, load_backend
    from pomexport.runtime.writers import open_video

    options = options or GenerateOptions()
    path = check_output_path(out)
    choice = choose_backend(source, backend, device)
    runner = load_backend(source, backend=choice.backend, device=device)
    cfg = runner.config
    options.check_labels(cfg.num_classes, source)
    shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
    check_output_capacity(path, options.frames, len(options.labels), shape, options.scale)
    (log or logger.info)(f"backend: {runner.name} on {runner.device} ({choice.reason})")
    start = time.perf_counter()
    with open_video(path, options.frames, options.scale, options.fps, cfg.input_size) as sink:
        sampling = options.sampling.as_kwargs()
        made = generate_frames(runner, options.labels, options.frames, **sampling)
        for frame in _bar(made, options.frames, bar):
            sink.write(frame)
        written = sink.close()
    seconds = time.perf_counter() - start
    return ClipResult(written, options, runner.name, str(runner.device), seconds)


def _bar(frames, total: int, show: bool):
    from tqdm.auto import tqdm

    return tqdm(frames, total=total, disable=not show, unit="frame", desc="generate")
