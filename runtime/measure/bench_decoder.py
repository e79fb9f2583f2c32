"""``pomexport bench --decoder ARTIFACT``: the decoder stage's share of frame time (issue 21).

One stream of an artifact with a decoder stage (docs/design.md §6.2), on ONNX Runtime CPU:
each latent frame is generated (``steps`` denoising calls + the commit, timed together) and
then decoded (timed alone), as ``pomexport generate`` does. Each row is one latent frame:
``step_ms`` (its steps + commit), ``decode_ms``, the RGB frames it decoded to and
``decode_share = decode_ms / (decode_ms + step_ms)``; the first ``warmup`` frames are rows
too (``warmup: true``; a Wan stream's first frame runs the ``first`` graph, every later one
``next``) but stay out of the summary: the medians of the other rows, per latent frame and
per RGB frame, and the share from those medians.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone

from pomexport.errors import ConfigError
from pomexport.runtime.decoding import load_decoder
from pomexport.runtime.generator import VideoGenerator
from pomexport.runtime.loading import load_backend
from pomexport.runtime.measure import rss as _rss

logger = logging.getLogger(__name__)

SCHEMA = "pomexport.bench.decoder/1"
BACKEND = "ort"  # ONNX Runtime CPU EP, the step's backend and the decoder's
METHOD = {
    "step_ms": "wall time of one latent frame: `steps` denoising calls + 1 commit call "
    "(one stream, batch 1, ONNX Runtime CPU)",
    "decode_ms": "wall time of decoding that latent frame right after its commit (the "
    "artifact's decoder graphs on ONNX Runtime CPU, IO binding, Wan caches ping-pong)",
    "decode_share": "decode_ms / (decode_ms + step_ms) of the same row; the summary's from "
    "the medians of the rows after warm-up",
    "per_rgb_frame": "the medians divided by the RGB frames a latent frame decodes to "
    "(Wan: 4 for every latent frame after the first); the share is the same",
}


def share(decode_ms: float, step_ms: float) -> float:
    """The decoder's share of the frame time: ``decode / (decode + steps)``."""
    return decode_ms / (decode_ms + step_ms)


def _row(index: int, role: str, step_s: float, decode_s: float, rgb: int, warmup: int) -> dict:
    step_ms, decode_ms = step_s * 1e3, decode_s * 1e3
    return {
        "frame": index + 1,
        "role": role,
        "warmup": index < warmup,
        "step_ms": step_ms,
        "decode_ms": decode_ms,
        "rgb_frames": rgb,
        "decode_share": share(decode_ms, step_ms),
    }


def _summary(rows: list[dict]) -> dict:
    timed = [r for r in rows if not r["warmup"]]
    step = statistics.median(r["step_ms"] for r in timed)
    decode = statistics.median(r["decode_ms"] for r in timed)
    rgb = statistics.median(r["rgb_frames"] for r in timed)
    return {
        "frames": len(timed),
        "step_ms": step,
        "decode_ms": decode,
        "decode_share": share(decode, step),
        "per_rgb_frame": {"step_ms": step / rgb, "decode_ms": decode / rgb},
    }


def _time_frames(gen, decoder, frames: int, warmup: int, progress) -> list[dict]:
    streaming = decoder.spec.streaming
    stream = gen.stream(frames + warmup)
    rows = []
    for index in range(frames + warmup):
        started = time.perf_counter()
        frame = next(stream)
        generated = time.perf_counter()
        rgb = decoder.decode(0, frame.latent)
        decoded = time.perf_counter()
        role = ("first" if index == 0 else "next") if streaming else "decode"
        row = _row(index, role, generated - started, decoded - generated, rgb.shape[0], warmup)
        rows.append(row)
        progress(
            f"frame {row['frame']}: {row['step_ms']:.1f} ms steps, {row['decode_ms']:.1f} ms decode"
        )
    return rows


def decoder_share(
    artifact: str | os.PathLike,
    frames: int = 4,
    steps: int = 8,
    warmup: int = 2,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """The report (JSON-able dict) of ``frames`` timed latent frames after ``warmup`` ones of
    one stream of ``artifact``, which must have a decoder stage (ConfigError otherwise)."""
    if frames < 1 or steps < 1 or warmup < 0:
        raise ConfigError("frames and steps must be >= 1, warmup >= 0")
    progress = progress or logger.info
    runner = load_backend(artifact, BACKEND)
    decoder = load_decoder(runner)
    if decoder is None:
        raise ConfigError(f"{artifact}: has no decoder stage (build it with --decoder DIR)")
    gen = VideoGenerator(runner, slots=1, steps=steps)
    gen.start(0, label=runner.config.num_classes)
    decoder.start(0)
    rows = _time_frames(gen, decoder, frames, warmup, progress)
    return {
        "schema": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": _rss.machine_info(),
        "artifact": str(artifact),
        "backend": runner.name,
        "decoder": decoder.name,
        "settings": {"frames": frames, "steps": steps, "warmup": warmup},
        "method": METHOD,
        "rows": rows,
        "summary": _summary(rows),
    }
