"""Latent frames -> RGB frames, each decoded right after it is committed (issue 21).

A :class:`LatentDecoder` decodes one stream's latent frame at a time (graphs at batch 1), so
streams start, stop and keep their own causal cache independently:

- :class:`TorchDecoder`: the torch wrappers of ``models/decoders.py`` on a diffusers folder
  (``pomexport generate MODEL --decoder DIR``, torch backend);
- :class:`~pomexport.runtime.ort_decoder.OrtDecoder`: an artifact's ``decoder/`` graphs in
  ONNX Runtime sessions made from the verified bytes, the Wan cache in ping-pong persistent
  buffers like the mixer state;
- :class:`~pomexport.runtime.trt_decoder.TrtDecoder`: the same graphs' TensorRT engines
  (``build --decoder DIR --backend trt``) for the TensorRT step backends, when the artifact
  records them for this GPU and TensorRT version (else those run ``OrtDecoder`` on the CUDA
  EP).

:func:`decode_frames` turns :func:`~pomexport.runtime.api.generate_frames`' latent frames
(B, C, h, w) into RGB frames (B, 3, H, W) in [-1, 1]: a Wan stream gives 1 frame for its first
latent frame and ``frames_per_step["next"]`` (4) for every later one. :func:`load_decoder`
picks the decoder for a loaded backend.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Protocol

import torch

from pomexport.errors import ConfigError, PomExportError, StateError
from pomexport.export.artifact import Artifact
from pomexport.runtime.backend import Backend
from pomexport.runtime.choices import TRT_BACKEND

logger = logging.getLogger(__name__)

__all__ = ["LatentDecoder", "TorchDecoder", "artifact_decoder", "decode_frames", "load_decoder"]

# The step backends whose artifacts may carry decoder engines: TensorRT itself and ONNX
# Runtime's TensorRT EP (both need TensorRT's libraries; the engines need its Python module).
TRT_BACKENDS = (TRT_BACKEND, "ort-trt")
# The EP the decoder runs on for the other step backends, by choice and by Backend.name.
_ORT_BACKENDS = {"ort": "ort", "ort-cpu": "ort", "ort-cuda": "ort-cuda"}


class LatentDecoder(Protocol):
    """What :func:`decode_frames` needs: one stream's latent frame in, its RGB frames out."""

    name: str  # the autoencoder class and where it runs, for logs
    rgb_shape: tuple[int, int, int]  # (3, H, W) of one decoded frame

    def rgb_frames(self, latent_frames: int) -> int:
        """RGB frames a stream of ``latent_frames`` latent frames decodes to."""
        ...

    def start(self, stream: int) -> None:
        """Begin stream ``stream``: its next frame is its first (empty causal history)."""
        ...

    def decode(self, stream: int, latent: torch.Tensor) -> torch.Tensor:
        """latent (C, h, w) of ``stream`` -> (F, 3, H, W) fp32 RGB on the CPU."""
        ...


class TorchDecoder:
    """The decoder of a diffusers ``save_pretrained`` folder in eager PyTorch.

    Image decoders (AutoencoderKL, AutoencoderTiny) decode each frame alone; the Wan decoder
    keeps each stream's causal caches (fixed shapes, ``models/decoders.py: WanStream``).
    """

    def __init__(self, folder: str | os.PathLike, device: str | torch.device = "cpu") -> None:
        from pomexport.models.decoders import WanStream, decoder_from_folder

        self.device = torch.device(device)
        self.decoder = decoder_from_folder(folder)
        self.streaming = isinstance(self.decoder, WanStream)
        self.decoder.vae.to(self.device)
        self.name = f"{type(self.decoder.vae).__name__} on torch ({self.device})"
        self._caches: dict[int, list[torch.Tensor] | None] = {}
        channels = len(self.decoder.affine.scale)
        self._latent_shape = (channels,)  # (C,); h and w come with each frame
        temporal = sum(getattr(m, "mode", None) == "upsample3d" for m in self.decoder.vae.modules())
        self._per_step = 2**temporal if self.streaming else 1
        self.rgb_shape: tuple[int, int, int] | None = None

    def rgb_frames(self, latent_frames: int) -> int:
        if not self.streaming:
            return latent_frames
        return min(1, latent_frames) + max(0, latent_frames - 1) * self._per_step

    def probe(self, latent_hw: tuple[int, int]) -> tuple[int, int, int]:
        """(3, H, W) of a frame decoded from an (h, w) latent (one zero frame decoded)."""
        zeros = torch.zeros(*self._latent_shape, *latent_hw)
        self.rgb_shape = tuple(self._run(zeros, None)[0].shape[1:])
        return self.rgb_shape

    def start(self, stream: int) -> None:
        self._caches[stream] = None

    def decode(self, stream: int, latent: torch.Tensor) -> torch.Tensor:
        if stream not in self._caches:
            raise StateError(f"decoder: stream {stream} was not started")
        frames, caches = self._run(latent, self._caches[stream])
        self._caches[stream] = caches
        return frames

    def _run(self, latent: torch.Tensor, caches) -> tuple[torch.Tensor, list | None]:
        x = latent.to(self.device, torch.float32).unsqueeze(0)
        with torch.inference_mode():
            if not self.streaming:
                return self.decoder(x).float().cpu(), None  # (1, 3, H, W): one frame
            frames, caches = self.decoder.decode(x.unsqueeze(2), caches)
        return frames[0].permute(1, 0, 2, 3).float().cpu(), caches  # (F, 3, H, W)


def decode_frames(
    latents: Iterator[torch.Tensor], decoder: LatentDecoder
) -> Iterator[torch.Tensor]:
    """Decode each latent frame (B, C, h, w) of B streams as it comes: yields the RGB frames
    (B, 3, H, W) it decodes to, in order (a Wan stream's later frames give 4 each)."""
    for index, frame in enumerate(latents):
        decoded = []
        for stream in range(frame.shape[0]):
            if index == 0:
                decoder.start(stream)
            decoded.append(decoder.decode(stream, frame[stream]))
        yield from torch.stack(decoded, dim=1)  # (F, B, 3, H, W): frame by frame


def load_decoder(runner: Backend, folder: str | os.PathLike | None = None) -> LatentDecoder | None:
    """The decoder for a loaded backend: the artifact's decoder stage
    (:func:`artifact_decoder`: its TensorRT engines or ONNX Runtime), or ``folder``'s on
    torch for a model; None when there is none. ConfigError for ``folder`` with an artifact
    (it carries its own decoder)."""
    artifact = getattr(runner, "artifact", None)
    if artifact is not None:
        if folder is not None:
            raise ConfigError(
                f"--decoder {folder}: {artifact.root} is an artifact, which carries its own "
                f"decoder; build it with `pomexport build MODEL --decoder {folder}`"
            )
        if artifact.decoder is None:
            return None
        threads = getattr(runner, "threads", None)  # the step's count, not sampled again
        return artifact_decoder(artifact, runner.name, threads, _cuda_index(runner.device))
    if folder is None:
        return None
    from pomexport.models.decoders import check_source_for

    cfg = runner.config
    check_source_for(folder, cfg.in_channels, cfg.video)
    decoder = TorchDecoder(folder, runner.device)
    decoder.probe((cfg.input_size, cfg.input_size))
    return decoder


def artifact_decoder(
    artifact: Artifact, backend: str, threads: int | None = None, device: int = 0
) -> LatentDecoder:
    """The decoder stage of a loaded artifact for the step backend ``backend`` (a backend
    choice or a ``Backend.name``): the TensorRT backends decode on the artifact's decoder
    engines when it records them for this GPU and TensorRT version (CUDA device
    ``device``), else on ONNX Runtime's CUDA EP; the ONNX Runtime backends on their own EP
    (``threads``: the CPU EP's intra-op threads)."""
    from pomexport.runtime.ort_decoder import OrtDecoder

    if backend in TRT_BACKENDS:
        decoder = _trt_decoder(artifact, device)
        if decoder is not None:
            return decoder
    return OrtDecoder.from_artifact(artifact, _ORT_BACKENDS.get(backend, "ort-cuda"), threads)


def _trt_decoder(artifact: Artifact, device: int) -> LatentDecoder | None:
    """TrtDecoder on the engines matching this GPU and TensorRT; None (logged: which engine
    is missing and how to build it) when one is missing or TensorRT cannot run here."""
    from pomexport.runtime.trt_decoder import (
        BUILD_HINT,
        TrtDecoder,
        find_decoder_engines,
        tensorrt_target,
    )

    fallback = "the decoder runs on ONNX Runtime's CUDA EP"
    try:
        target = tensorrt_target(device)
    except PomExportError as e:  # no TensorRT module or no GPU: the EP may still run
        logger.info("decoder: no TensorRT here (%s); %s", e, fallback)
        return None
    found = find_decoder_engines(artifact, *target)
    if not found.complete:
        names = ", ".join(e.plan_name for e in found.missing)
        logger.info(
            "decoder: %s has no engine %s (TensorRT %s, %s, SM %d); %s; build them with `%s`",
            artifact.root,
            names,
            *target,
            fallback,
            BUILD_HINT,
        )
        return None
    return TrtDecoder.from_artifact(artifact, found.plans, device)


def _cuda_index(device: torch.device | str | None) -> int:
    """The CUDA device index a step backend runs on (0 for the CPU or an unnumbered cuda)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    return (device.index or 0) if device.type == "cuda" else 0
