"""Output writers: gif, png frames, npy latents, mp4 — chosen by the file extension.

Latents of the tiny model are RGB images in [-1, 1] (no VAE): ``uint8 = round((x+1)*127.5)``.
Several streams are tiled side by side in one picture. Tiny frames are enlarged by nearest
neighbour with an integer ``scale`` (default: the smallest one that makes frames >= 256 px
tall). Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import ConfigError
from pomexport.export.artifact.atomic import TempTarget, atomic_write

# Output checks live in a torch-free module so the CLI can run them before importing torch.
from pomexport.runtime.outputs import (  # noqa: F401 (re-exported)
    MIN_VIEW_PX,
    WRITERS,
    _import_av,
    check_output_capacity,
    check_output_path,
    default_scale,
)

logger = logging.getLogger(__name__)


class VideoSink:
    """Where frames go as they are made: ``write`` one frame of every stream at a time,
    then ``close`` (returns the files written) or ``abort`` (removes what is unfinished).

    mp4, png and npy hold no more than one frame in memory, so a stream of any length has
    flat memory; gif (one file of every frame, made at the end) keeps the uint8 frames.
    Use :func:`open_video`; also a context manager that aborts on an exception.
    """

    def __init__(self, path: Path, scale: int, fps: float) -> None:
        self.path, self.scale, self.fps, self.frames = path, scale, fps, 0

    def write(self, frame: torch.Tensor) -> None:
        """One frame of every stream: (B, C, H, W) latents in [-1, 1]."""
        self._write(frame.detach().float().cpu())
        self.frames += 1

    def _rgb(self, frame: torch.Tensor) -> np.ndarray:
        if self.frames and frame.shape[1] > 3:
            frame = frame[:, :3]  # to_rgb_frames warned about the hidden channels once
        return to_rgb_frames(frame.unsqueeze(1), self.scale)[0]

    def _write(self, frame: torch.Tensor) -> None:
        raise NotImplementedError

    def close(self) -> list[Path]:
        """Finish the file(s); returns what was written."""
        raise NotImplementedError

    def abort(self) -> None:
        """Remove the unfinished file (completed per-frame files stay)."""

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self.abort()


class _NpySink(VideoSink):
    """Raw fp32 latents (B, F, C, H, W), written frame by frame into a memory map."""

    def __init__(self, path: Path, scale: int, fps: float, frames: int) -> None:
        super().__init__(path, scale, fps)
        self.total, self.target, self.array = frames, TempTarget(path), None

    def _write(self, frame: torch.Tensor) -> None:
        if self.array is None:
            shape = (frame.shape[0], self.total, *frame.shape[1:])
            self.array = np.lib.format.open_memmap(
                self.target.tmp, mode="w+", dtype=np.float32, shape=shape
            )
        if self.frames >= self.total:
            raise ConfigError(f"more than the {self.total} frames announced for {self.path}")
        self.array[:, self.frames] = frame.numpy()

    def close(self) -> list[Path]:
        if self.frames != self.total:
            self.abort()
            raise ConfigError(f"{self.path}: {self.frames} of {self.total} frames written")
        self.array.flush()
        self.array = None  # the memory map must be closed before the rename
        self.target.commit()
        return [self.path]

    def abort(self) -> None:
        self.array = None
        self.target.discard()


class _PngSink(VideoSink):
    """One png per frame: ``<stem>_0000.png``, ``<stem>_0001.png``... beside ``path``."""

    def __init__(self, path: Path, scale: int, fps: float) -> None:
        super().__init__(path, scale, fps)
        self.written: list[Path] = []

    def _write(self, frame: torch.Tensor) -> None:
        from PIL import Image

        target = self.path.with_name(f"{self.path.stem}_{self.frames:04d}.png")
        image = Image.fromarray(self._rgb(frame))
        atomic_write(target, lambda tmp: image.save(tmp, format="PNG"))
        self.written.append(target)

    def close(self) -> list[Path]:
        return self.written


class _GifSink(VideoSink):
    """The whole animation is one GIF write at the end: keeps the uint8 frames."""

    def __init__(self, path: Path, scale: int, fps: float) -> None:
        super().__init__(path, scale, fps)
        self.images: list = []

    def _write(self, frame: torch.Tensor) -> None:
        from PIL import Image

        self.images.append(Image.fromarray(self._rgb(frame)))

    def close(self) -> list[Path]:
        images = self.images
        if not images:
            raise ConfigError(f"{self.path}: no frames to write")
        duration = max(20, round(1000 / self.fps))  # 10 ms units; browsers clamp < 20

        def write(tmp: Path) -> None:
            images[0].save(
                tmp, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
            )

        atomic_write(self.path, write)
        return [self.path]


class _Mp4Sink(VideoSink):
    """H.264 (or MPEG-4 part 2 where libx264 is missing), encoded frame by frame.

    ``lossless``: RGB H.264 at qp 0 (libx264rgb): every frame decodes to exactly the uint8
    frame written (no 4:2:0 chroma subsampling, no quantisation); larger files, and players
    without High 4:4:4 support cannot show them."""

    def __init__(self, path: Path, scale: int, fps: float, lossless: bool = False) -> None:
        super().__init__(path, scale, fps)
        self.av, self.target, self.lossless = _import_av(), TempTarget(path), lossless
        if lossless and "libx264rgb" not in self.av.codecs_available:
            raise ConfigError("a lossless .mp4 needs libx264rgb, which PyAV's FFmpeg lacks here")
        # Fragmented mp4 (a moof per keyframe, an empty moov up front): a plain mp4 keeps
        # its whole sample index in memory until close — ~100 bytes a frame, 8.6 MiB over a
        # 100,000-frame stream — while fragments are written as they fill.
        fragmented = {"movflags": "frag_keyframe+empty_moov"}
        self.container = self.av.open(
            str(self.target.tmp), mode="w", format="mp4", options=fragmented
        )
        self.stream = None

    def _write(self, frame: torch.Tensor) -> None:
        array = _even(self._rgb(frame))
        if self.stream is None:
            self._open_stream(*array.shape[:2])
        video = self.av.VideoFrame.from_ndarray(array, format="rgb24")
        self.container.mux(self.stream.encode(video))

    def _open_stream(self, height: int, width: int) -> None:
        rate = max(1, round(self.fps))
        if self.lossless:
            self.stream = self.container.add_stream("libx264rgb", rate=rate, options={"qp": "0"})
            self.stream.pix_fmt = "rgb24"
        else:
            codec = "libx264" if "libx264" in self.av.codecs_available else "mpeg4"
            self.stream = self.container.add_stream(codec, rate=rate)
            self.stream.pix_fmt = "yuv420p"
        self.stream.height, self.stream.width = height, width

    def close(self) -> list[Path]:
        if self.stream is None:
            self.abort()
            raise ConfigError(f"{self.path}: no frames to write")
        self.container.mux(self.stream.encode())  # flush the encoder
        self.container.close()
        self.target.commit()
        return [self.path]

    def abort(self) -> None:
        try:
            self.container.close()
        finally:
            self.target.discard()


def _even(array: np.ndarray) -> np.ndarray:
    """Pad to even height/width by repeating the edge (yuv420p needs even sizes)."""
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def check_lossless(path: Path, lossless: bool) -> Path:
    """``path``, or ConfigError when ``lossless`` is asked of a format other than .mp4."""
    if lossless and path.suffix.lower() != ".mp4":
        raise ConfigError(f"--lossless applies to .mp4 output, not {path.suffix.lower()}")
    return path


def open_video(
    path: str | os.PathLike,
    frames: int,
    scale: int | None = None,
    fps: float = 8.0,
    height: int = 16,
    lossless: bool = False,
) -> VideoSink:
    """A :class:`VideoSink` for ``frames`` frames to ``path``; the extension picks the
    format (.gif, .png frames, .npy raw latents, .mp4; ``lossless``: an .mp4 whose frames
    decode bit-exact). ``scale`` defaults to the one that makes a frame of ``height`` latent
    px at least 256 px tall."""
    path = check_output_path(path)
    scale = default_scale(height) if scale is None else scale
    if scale < 1:
        raise ConfigError(f"scale must be >= 1, got {scale}")
    if fps <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    kind = path.suffix.lower()
    if kind == ".npy":
        return _NpySink(path, scale, fps, frames)
    check_lossless(path, lossless)
    if kind == ".mp4":
        return _Mp4Sink(path, scale, fps, lossless)
    return {".gif": _GifSink, ".png": _PngSink, ".mp4": _Mp4Sink}[kind](path, scale, fps)


def to_rgb_frames(latents: torch.Tensor, scale: int) -> list[np.ndarray]:
    """(B, F, C, H, W) or (F, C, H, W) latents in [-1, 1] -> F uint8 (H*s, B*W*s, 3) frames.

    Streams are tiled left to right. One channel is shown grey; more than three: the first
    three are shown (latent models without a VAE have no RGB view).
    """
    x = latents.detach().float().cpu()
    if x.dim() == 4:
        x = x.unsqueeze(0)
    if x.dim() != 5:
        raise ConfigError(f"latents must be (B, F, C, H, W), got shape {tuple(latents.shape)}")
    channels = x.shape[2]
    if channels == 1:
        x = x.expand(-1, -1, 3, -1, -1)
    elif channels == 2:
        raise ConfigError("cannot show 2-channel latents as images; write .npy instead")
    elif channels > 3:
        logger.warning("showing the first 3 of %d latent channels", channels)
        x = x[:, :, :3]
    pixels = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    pixels = pixels.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    tiled = pixels.permute(1, 3, 0, 4, 2).flatten(2, 3)  # (F, H, B*W, 3)
    return [np.ascontiguousarray(frame.numpy()) for frame in tiled]


def write_video(
    latents: torch.Tensor,
    path: str | os.PathLike,
    scale: int | None = None,
    fps: float = 8.0,
) -> list[Path]:
    """Write latents (B, F, C, H, W) to ``path``; the extension picks the format
    (.gif, .png frames, .npy raw latents, .mp4). Returns the files written."""
    if latents.dim() != 5:
        raise ConfigError(f"latents must be (B, F, C, H, W), got shape {tuple(latents.shape)}")
    with open_video(path, latents.shape[1], scale, fps, latents.shape[-2]) as sink:
        for f in range(latents.shape[1]):
            sink.write(latents[:, f])
        written = sink.close()
    logger.info("wrote %s", ", ".join(str(p) for p in written[:3]))
    return written
