"""Output paths and sizes of ``pomexport generate``, checked before any frame is made (issue 22).

Torch-free, so the CLI refuses an output it cannot write before importing torch (seconds):
an existing directory, a folder it cannot write (probed), a path inside a pomexport
artifact, an unknown extension; and, once the model's frame size is known, a ``.npy`` larger
than the free disk or a ``.gif`` larger than the available memory. ``runtime/writers.py``
re-exports these. :func:`check_report_path` does the same for a measurement's report file.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile
from pathlib import Path

from pomexport.errors import ConfigError

MIN_VIEW_PX = 256
WRITERS = (".gif", ".png", ".npy", ".mp4")


def _import_av():
    try:
        import av
    except ImportError as e:
        raise ConfigError(
            "writing mp4 needs PyAV: pip install av (or write .gif, .png or .npy)"
        ) from e
    return av


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
    if path.is_dir() or (path.exists() and not path.is_file()):
        raise ConfigError(f"{path}: exists and is not a file; choose another --out")
    _refuse_artifact_folder(path)
    _probe_writable(path.parent)
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("av") is None:
        _import_av()  # fail before generating, not after
    return path


def check_report_path(path: str | os.PathLike | None, option: str = "--out") -> Path | None:
    """``path`` (None: none asked for) once its folder exists or was made and it can be
    written: checked before a run of minutes, not after. ConfigError naming ``option``."""
    if path is None:
        return None
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{option}: cannot create {path.parent}: {e.strerror}") from e
    if not os.access(path.parent, os.W_OK) or path.is_dir():
        raise ConfigError(f"{option}: cannot write {path}")
    return path


def _refuse_artifact_folder(path: Path) -> None:
    """An artifact refuses files it does not list: writing a clip into one breaks it."""
    for folder in path.resolve().parents:
        if _is_artifact(folder):
            raise ConfigError(
                f"{path}: inside the artifact {folder} (an unlisted file would make it refuse "
                "to load); write the clip elsewhere"
            )


def _is_artifact(folder: Path) -> bool:
    """Whether ``folder`` holds a pomexport artifact manifest (its first 4 KiB name the format;
    any other manifest.json, a web app's, is not ours to protect)."""
    try:
        with open(folder / "manifest.json", "rb") as f:
            return b'"pomexport-artifact"' in f.read(4096)
    except OSError:
        return False


def _probe_writable(folder: Path) -> None:
    """Create and remove a temp file in ``folder``: permissions, read-only mounts and ACLs all
    answer here, before minutes of generation (``os.access`` says yes to root on a read-only
    mount)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".pomexport-probe-", dir=folder)
    except OSError as e:
        raise ConfigError(f"cannot write to {folder}: {e.strerror}") from e
    os.close(fd)
    os.unlink(probe)


def check_output_capacity(
    path: Path, frames: int, streams: int, frame_shape: tuple[int, int, int], scale: int | None
) -> None:
    """Refuse, before generating, a clip its writer cannot hold: a ``.npy`` larger than the free
    disk space, a ``.gif`` (every frame kept until the end) larger than the available memory.
    ``frame_shape``: one stream's latent (C, H, W). mp4 and png stream: any length fits."""
    channels, height, width = frame_shape
    kind = path.suffix.lower()
    if kind == ".npy":
        need = 4 * frames * streams * channels * height * width
        free = shutil.disk_usage(path.parent).free
        if need > free:
            raise ConfigError(
                f"{path}: {frames} frames of latents need {need / 2**30:.1f} GiB, "
                f"{free / 2**30:.1f} GiB are free there; write .mp4 or .png to stream them"
            )
    elif kind == ".gif":
        scale = default_scale(height) if scale is None else scale
        need = frames * streams * 3 * (height * scale) * (width * scale)
        free = _available_memory()
        if free is not None and need > free // 2:
            raise ConfigError(
                f"{path}: a gif keeps every frame until the end; {frames} frames need "
                f"{need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB of memory are available; "
                "write .mp4 or .png to stream them"
            )


def _available_memory() -> int | None:
    """MemAvailable in bytes (None where /proc/meminfo is missing)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def default_scale(height: int) -> int:
    """Smallest integer scale that makes a frame of ``height`` px at least 256 px tall."""
    return max(1, math.ceil(MIN_VIEW_PX / height))
