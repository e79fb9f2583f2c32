"""``pomexport serve-bench``: frames/s of the Triton stream model with 1, 4, 16... concurrent
streams, on a real server on loopback, next to the same batch run in-process.

One row per concurrency ``n``: ``n`` videos of ``frames`` frames streamed at once (one thread
and one sequence each), ``fps`` = ``n * frames / wall``. The server's model has
``max(concurrencies)`` slots; ``local_fps`` runs the local VideoGenerator with the same
slots and ``n`` active streams (the serving overhead is the gap between the two).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

SCHEMA = "pomexport.serve-bench/1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _local_fps(artifact: Path, slots: int, active: int, frames: int, steps: int) -> float:
    from pomexport.runtime.generator import VideoGenerator
    from pomexport.runtime.loading import load_backend

    gen = VideoGenerator(load_backend(artifact, "ort", "cpu"), slots=slots, steps=steps)
    for slot in range(active):
        gen.start(slot, label=slot % gen.config.num_classes, seed=slot)
    next(iter(gen.stream(1)))  # warm-up frame
    start = time.perf_counter()
    produced = sum(1 for _ in gen.stream(frames))
    return produced / (time.perf_counter() - start)


def _served_fps(url: str, protocol: str, n: int, frames: int, first_id: int) -> float:
    from pomexport.runtime.serving.client import StreamSpec, stream_videos

    specs = [StreamSpec(label=i % 10, seed=i) for i in range(n)]
    start = time.perf_counter()
    stream_videos(url, specs, frames, protocol, first_sequence_id=first_id, timeout_s=600)
    return n * frames / (time.perf_counter() - start)


def serve_bench(
    artifact: str | os.PathLike,
    concurrencies: Sequence[int] = (1, 4, 16),
    frames: int = 8,
    steps: int = 20,
    protocol: str = "grpc",
    threads: int = 0,
    strategy: str = "oldest",
    max_queue_delay_us: int = 20000,
) -> dict:
    """Run the benchmark (see the module doc) and return its JSON-ready report."""
    from pomexport.runtime.serving.repository import RepoOptions, write_repository
    from pomexport.runtime.serving.server import TritonServer

    if not concurrencies or min(concurrencies) < 1 or frames < 1:
        raise ConfigError("serve-bench needs concurrencies >= 1 and frames >= 1")
    slots = max(concurrencies)
    opts = RepoOptions(
        max_streams=slots,
        steps=steps,
        threads=threads,
        strategy=strategy,
        max_queue_delay_us=max_queue_delay_us,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="pomexport-serve-bench-") as tmp:
        write_repository(artifact, Path(tmp) / "repo", opts)
        http, grpc = _free_port(), _free_port()
        with TritonServer(Path(tmp) / "repo", http_port=http, grpc_port=grpc) as server:
            server.wait_ready(timeout_s=300)
            url = server.url if protocol == "http" else server.grpc_url
            _served_fps(url, protocol, 1, 1, first_id=1)  # warm-up: first-call costs
            for i, n in enumerate(concurrencies):
                fps = _served_fps(url, protocol, n, frames, first_id=1000 * (i + 1))
                local = _local_fps(Path(artifact), slots, n, frames, steps)
                rows.append(dict(streams=n, fps=round(fps, 2), local_fps=round(local, 2)))
                logger.info("%d streams: %.2f frames/s served, %.2f local", n, fps, local)
    return {
        "schema": SCHEMA,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "artifact": str(artifact),
        "protocol": protocol,
        "strategy": strategy,
        "max_queue_delay_us": max_queue_delay_us,
        "slots": slots,
        "steps": steps,
        "frames": frames,
        "threads": threads or os.cpu_count(),
        "rows": rows,
    }
