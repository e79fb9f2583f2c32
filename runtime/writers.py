"""Output writers: gif, png frames, npy latents, mp4 — chosen by the file extension.

Latents of the tiny model are RGB images in [-1, 1] (no VAE): ``uint8 = round((x+1)*127.5)``.
Several streams are tiled side by side in one picture. Tiny frames are enlarged by nearest
neighbour with an integer ``scale`` (default: the smallest one that makes frames >= 256 px
tall). Every file is written atomically (temp file + rename).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import ConfigError
from pomexport.models.weights import atomic_write

logger = logging.getLogger(__name__)

MIN_VIEW_PX = 256


def _write_npy(latents: torch.Tensor, path: Path, scale: int, fps: float) -> list[Path]:
    array = latents.detach().cpu().numpy().astype(np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)
    return [path]


def _write_gif(latents: torch.Tensor, path: Path, scale: int, fps: float) -> list[Path]:
    from PIL import Image

    images = [Image.fromarray(a) for a in to_rgb_frames(latents, scale)]
    duration = max(20, round(1000 / fps))  # gif delays are in 10 ms units, browsers clamp < 20

    def write(tmp: Path) -> None:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0
        )

    atomic_write(path, write)
    return [path]


def _write_png(latents: torch.Tensor, path: Path, scale: int, fps: float) -> list[Path]:
    """One png per frame: ``<stem>_0000.png``, ``<stem>_0001.png``... beside ``path``."""
    from PIL import Image

    written = []
    for f, array in enumerate(to_rgb_frames(latents, scale)):
        target = path.with_name(f"{path.stem}_{f:04d}.png")
        image = Image.fromarray(array)
        atomic_write(target, lambda tmp, image=image: image.save(tmp, format="PNG"))
        written.append(target)
    return written


def _write_mp4(latents: torch.Tensor, path: Path, scale: int, fps: float) -> list[Path]:
    av = _import_av()
    frames = [_even(a) for a in to_rgb_frames(latents, scale)]
    height, width = frames[0].shape[:2]
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def write(tmp: Path) -> None:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=max(1, round(fps)))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for array in frames:
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())  # flush the encoder

    atomic_write(path, write)
    return [path]


def _import_av():
    try:
        import av
    except ImportError as e:
        raise ConfigError(
            "writing mp4 needs PyAV: pip install av (or write .gif, .png or .npy)"
        ) from e
    return av


def _even(array: np.ndarray) -> np.ndarray:
    """Pad to even height/width by repeating the edge (yuv420p needs even sizes)."""
    pad_h, pad_w = array.shape[0] % 2, array.shape[1] % 2
    return np.pad(array, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")


Writer = Callable[[torch.Tensor, Path, int, float], list[Path]]
WRITERS: dict[str, Writer] = {
    ".gif": _write_gif,
    ".png": _write_png,
    ".npy": _write_npy,
    ".mp4": _write_mp4,
}


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` if its extension has a writer and its folder exists, else a ConfigError."""
    path = Path(path)
    if path.suffix.lower() not in WRITERS:
        raise ConfigError(
            f"unknown output extension {path.suffix or '(none)'!r} for {path.name}; "
            f"known: {', '.join(WRITERS)}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"output folder does not exist: {path.parent}")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("av") is None:
        _import_av()  # fail before generating, not after
    return path


def default_scale(height: int) -> int:
    """Smallest integer scale that makes a frame of ``height`` px at least 256 px tall."""
    return max(1, math.ceil(MIN_VIEW_PX / height))


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
    path = check_output_path(path)
    if scale is None:
        scale = default_scale(latents.shape[-2])
    if scale < 1:
        raise ConfigError(f"scale must be >= 1, got {scale}")
    if fps <= 0:
        raise ConfigError(f"fps must be > 0, got {fps}")
    written = WRITERS[path.suffix.lower()](latents, path, scale, fps)
    logger.info("wrote %s", ", ".join(str(p) for p in written[:3]))
    return written
