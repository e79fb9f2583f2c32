"""A ``tritonclient`` (HTTP or gRPC) client for the stream model: N frames of several videos,
requested concurrently (one thread and one sequence per video, so the server batches them).

>>> clip = stream_videos("127.0.0.1:8000", [StreamSpec(3, seed=7), StreamSpec(5)], frames=16)
>>> clip.shape  # (videos, frames, C_in, H, W) fp32 latents
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from pomexport.errors import ConfigError, PomExportError
from pomexport.runtime.serving.repository import MODEL_NAME

logger = logging.getLogger(__name__)

PROTOCOLS = ("http", "grpc")


class RequestError(PomExportError):
    """The server refused or failed a request (its message included)."""


@dataclass(frozen=True)
class StreamSpec:
    """One video: its class label, noise seed and stream number (``frame_noise`` key)."""

    label: int
    seed: int = 0
    stream: int = 0


def _module(protocol: str):
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; known: {PROTOCOLS}")
    try:
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
    except ImportError as e:
        raise ConfigError("tritonclient is not installed: pip install 'pomexport[serve]'") from e
    return module


class StreamClient:
    """One connection that requests frames of sequences; not shared between threads."""

    def __init__(
        self, url: str, protocol: str = "http", model: str = MODEL_NAME, timeout_s: float = 60.0
    ) -> None:
        self._tc = _module(protocol)
        self.protocol, self.model, self.timeout_s = protocol, model, timeout_s
        if protocol == "http":
            self._client = self._tc.InferenceServerClient(
                url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            self._client = self._tc.InferenceServerClient(url)

    def _input(self, name: str, value: int):
        tensor = self._tc.InferInput(name, [1, 1], "INT64")
        tensor.set_data_from_numpy(np.array([[value]], dtype=np.int64))
        return tensor

    def next_frame(
        self, sequence_id: int, spec: StreamSpec | None = None, end: bool = False
    ) -> tuple[int, np.ndarray]:
        """The next frame of ``sequence_id``: ``(frame_index, latent (C_in, H, W) fp32)``.
        ``spec`` starts the sequence (START with its label, seed, stream); ``end`` ends it."""
        inputs = []
        if spec is not None:
            values = {"LABEL": spec.label, "SEED": spec.seed, "STREAM": spec.stream}
            inputs = [self._input(n, v) for n, v in values.items()]
        outputs = [self._tc.InferRequestedOutput(n) for n in ("LATENT", "FRAME_INDEX")]
        extra = {} if self.protocol == "http" else {"client_timeout": self.timeout_s}
        try:
            result = self._client.infer(
                self.model,
                inputs,
                outputs=outputs,
                sequence_id=sequence_id,
                sequence_start=spec is not None,
                sequence_end=end,
                **extra,
            )
        except self._tc.InferenceServerException as e:
            raise RequestError(f"sequence {sequence_id}: {e.message()}") from e
        return int(result.as_numpy("FRAME_INDEX").reshape(-1)[0]), result.as_numpy("LATENT")[0]

    def close(self) -> None:
        self._client.close()


def _one_video(url, protocol, model, timeout_s, sequence_id, spec, frames) -> np.ndarray:
    client = StreamClient(url, protocol, model, timeout_s)
    try:
        clip = []
        for f in range(frames):
            start = spec if f == 0 else None
            index, latent = client.next_frame(sequence_id, start, end=f == frames - 1)
            if index != f:
                raise RequestError(f"sequence {sequence_id}: got frame {index}, expected {f}")
            clip.append(latent)
        return np.stack(clip)
    finally:
        client.close()


def stream_videos(
    url: str,
    specs: Sequence[StreamSpec],
    frames: int,
    protocol: str = "http",
    model: str = MODEL_NAME,
    first_sequence_id: int = 1,
    timeout_s: float = 60.0,
) -> np.ndarray:
    """``frames`` frames of every video in ``specs``, all streamed at once (video ``i`` is
    sequence ``first_sequence_id + i``). Returns (videos, frames, C_in, H, W) fp32 latents."""
    if frames < 1 or not specs:
        raise ConfigError("stream_videos needs frames >= 1 and at least one video")
    _module(protocol)
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        jobs = [
            pool.submit(
                _one_video, url, protocol, model, timeout_s, first_sequence_id + i, spec, frames
            )
            for i, spec in enumerate(specs)
        ]
        return np.stack([job.result(timeout=timeout_s * frames) for job in jobs])
