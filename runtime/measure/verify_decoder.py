"""``verify --decoder DIR``: does an artifact's decoder stage decode what its autoencoder does?

The artifact's decoder graphs (ONNX Runtime, ``runtime/ort_decoder.py``, or their TensorRT
engines for a TensorRT backend, ``runtime/trt_decoder.py``) and the torch wrappers
of the source folder (``runtime/decoding.py: TorchDecoder``) decode the same seeded latent
frames — N(0, 1), the distribution a latent diffusion model's scaled latents are trained to —
one stream, frame by frame (a Wan stream through its caches). Gates, as issue 21 accepts a
decoder: fp32 within 1e-4 max abs, fp16 at least 40 dB PSNR (RGB range [-1, 1]).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from pomexport.errors import ConfigError

__all__ = ["DecoderVerifyReport", "verify_decoder"]

FP32_MAX_ABS = 1e-4
FP16_PSNR_DB = 40.0


@dataclass(frozen=True)
class DecoderVerifyReport:
    """Per-frame error of the artifact's decoder against torch; truthy when the gate holds."""

    decoder: str
    precision: str
    latent_frames: int
    rgb_frames: int
    max_abs: float
    psnr_db_min: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed

    @property
    def gate(self) -> str:
        if self.precision == "fp32":
            return f"max abs <= {FP32_MAX_ABS:g}"
        return f"PSNR >= {FP16_PSNR_DB:g} dB"

    @property
    def summary(self) -> str:
        """One line: what was compared, the errors, the gate and the verdict."""
        return (
            f"decoder {self.decoder} vs torch: {self.latent_frames} latent -> "
            f"{self.rgb_frames} RGB frames, max abs {self.max_abs:.3g}, min PSNR "
            f"{self.psnr_db_min:.1f} dB (gate {self.gate}): {'PASS' if self.passed else 'FAIL'}"
        )


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(4.0 / mse)  # peak-to-peak 2


def verify_decoder(
    artifact,
    source: str | os.PathLike,
    frames: int = 8,
    seed: int = 0,
    backend: str = "ort",
) -> DecoderVerifyReport:
    """Decode ``frames`` seeded latent frames with ``artifact``'s decoder stage (a path or
    loaded Artifact) and with ``source`` (the diffusers folder it was built from) on torch.
    ``backend``: the step backend whose decoder is checked (``runtime/decoding.py:
    artifact_decoder``: a TensorRT one decodes on the decoder engines when the artifact has
    them for this GPU, else on ONNX Runtime's CUDA EP)."""
    from pomexport.export.artifact import Artifact, load_artifact
    from pomexport.models.decoders import check_source_for
    from pomexport.runtime.decoding import TorchDecoder, artifact_decoder

    if frames < 1:
        raise ConfigError(f"frames must be >= 1, got {frames}")
    artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    if artifact.decoder is None:
        raise ConfigError(f"{artifact.root} has no decoder stage (pomexport build --decoder DIR)")
    cfg = artifact.config
    check_source_for(source, cfg.in_channels, cfg.video)
    decoders = (artifact_decoder(artifact, backend), TorchDecoder(source))
    gen = torch.Generator().manual_seed(seed)
    worst, psnr, made = 0.0, math.inf, 0
    for decoder in decoders:
        decoder.start(0)
    for _ in range(frames):
        latent = torch.randn(cfg.in_channels, cfg.input_size, cfg.input_size, generator=gen)
        got, ref = (decoder.decode(0, latent) for decoder in decoders)
        worst = max(worst, float((got - ref).abs().max()))
        psnr = min(psnr, _psnr(got, ref))
        made += got.shape[0]
    spec = artifact.decoder
    ok = bool(np.isfinite(worst)) and (
        worst <= FP32_MAX_ABS if spec.precision == "fp32" else psnr >= FP16_PSNR_DB
    )
    name = f"{spec.source_class} ({spec.kind}, {spec.precision})"
    return DecoderVerifyReport(name, spec.precision, frames, made, worst, psnr, ok)
