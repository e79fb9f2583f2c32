"""Latent decoders: diffusers autoencoders wrapped with a fixed, explicit IO contract.

Sources are folders written by diffusers' ``save_pretrained`` and nothing else: a local
directory with ``config.json`` and safetensors weights (never a download, never a pickle).
The class is read from ``config.json``'s ``_class_name``:

- ``AutoencoderTiny`` (TAESD) and ``AutoencoderKL``: per-frame image decoders,
  :class:`FrameDecoder`, ``latent [B, C, h, w] -> rgb [B, 3, H, W]``;
- ``AutoencoderKLWan`` (Wan 2.1 causal video VAE; Wan 2.2's layout, residual up blocks and
  patch size 2, too): :class:`WanStream`, one latent frame per call with the
  causal-convolution cache as explicit tensors (:class:`WanFirstStep`, :class:`WanNextStep`).

Latent scaling lives in one place, :class:`LatentAffine`: the model's latent maps to the
autoencoder's latent as ``z = latent * scale + shift`` (per channel). RGB comes out exactly as
diffusers' ``decode`` returns it: nominally [-1, 1] (``AutoencoderKL``/``AutoencoderTiny``
unclamped, as diffusers; ``AutoencoderKLWan`` clamped to [-1, 1], as diffusers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pomexport.errors import ArtifactError, ConfigError, StateError

IMAGE_CLASSES = ("AutoencoderTiny", "AutoencoderKL")
VIDEO_CLASSES = ("AutoencoderKLWan",)
WEIGHTS = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
CACHE_T = 2  # frames of history a kernel-3 causal conv reads (diffusers' CACHE_T)


def read_source_config(folder: str | Path) -> dict:
    """``config.json`` of a local ``save_pretrained`` folder, checked before any load.

    Raises ArtifactError for anything that is not a local directory holding a config and
    safetensors weights, ConfigError for a class pomexport does not decode.
    """
    path = Path(folder)
    if not path.is_dir():
        raise ArtifactError(
            f"decoder source {str(folder)!r} is not a local directory (pomexport never "
            "downloads: pass a folder written by diffusers' save_pretrained)"
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"decoder source {path}: no readable config.json ({e})") from e
    name = config.get("_class_name")
    if name not in IMAGE_CLASSES + VIDEO_CLASSES:
        known = ", ".join(IMAGE_CLASSES + VIDEO_CLASSES)
        raise ConfigError(f"decoder source {path}: _class_name {name!r} is not one of {known}")
    if not ((path / WEIGHTS).is_file() or (path / WEIGHTS_INDEX).is_file()):
        raise ArtifactError(f"decoder source {path}: no {WEIGHTS} (only safetensors are read)")
    return config


def latent_channels(config: dict) -> int:
    """Latent channels of a diffusers autoencoder config (``z_dim`` or ``latent_channels``)."""
    return len(LatentAffine.from_config(config).scale)


def check_source_for(folder: str | Path, in_channels: int, video: bool) -> dict:
    """:func:`read_source_config`, once the folder can decode a model's latents: as many
    latent channels as the model's ``in_channels``, and no causal video decoder for an image
    model. One-line ConfigError otherwise; reads ``config.json`` only."""
    config = read_source_config(folder)
    name, channels = config["_class_name"], latent_channels(config)
    if channels != in_channels:
        raise ConfigError(
            f"decoder source {folder}: {name} has {channels} latent channels, the model's "
            f"input has {in_channels} (in_channels); pair the model with its own autoencoder"
        )
    if name in VIDEO_CLASSES and not video:
        raise ConfigError(
            f"decoder source {folder}: {name} is a causal video decoder and the model is an "
            "image model (video=False); use a per-frame decoder"
        )
    return config


def load_autoencoder(folder: str | Path, config: dict | None = None) -> nn.Module:
    """The diffusers autoencoder of a local folder, fp32, eval mode (safetensors only).

    ``config``: the folder's :func:`read_source_config`, when the caller has read it already.
    """
    config = config if config is not None else read_source_config(folder)
    try:
        import diffusers
    except ImportError as e:
        raise ConfigError("latent decoders need diffusers: pip install 'pomexport[decoder]'") from e
    cls = getattr(diffusers, config["_class_name"])
    try:
        vae = cls.from_pretrained(
            str(folder),
            use_safetensors=True,
            local_files_only=True,
            torch_dtype=torch.float32,
            low_cpu_mem_usage=False,
        )
    except Exception as e:  # diffusers raises OSError, ValueError, EnvironmentError...
        raise ArtifactError(f"decoder source {folder}: diffusers could not load it: {e}") from e
    return vae.eval().requires_grad_(False)


@dataclass(frozen=True)
class LatentAffine:
    """``z = latent * scale + shift`` per channel: the model's latent to the autoencoder's.

    The inverse of what a pipeline applies after encoding, read from the config:
    ``scaling_factor``/``shift_factor`` (SD, SD3/Flux: ``z = latent / sf + shift``),
    ``latents_mean``/``latents_std`` (SDXL-style KL: ``z = latent * std / sf + mean``;
    Wan: ``z = latent * std + mean``, no scaling factor).
    """

    scale: tuple[float, ...]
    shift: tuple[float, ...]

    @classmethod
    def from_config(cls, config: dict) -> LatentAffine:
        """The affine of a diffusers ``config.json`` (see the class docstring)."""
        name = config["_class_name"]
        channels = int(config.get("z_dim") or config.get("latent_channels") or 4)
        mean, std = config.get("latents_mean"), config.get("latents_std")
        if name == "AutoencoderKLWan":
            return cls(tuple(map(float, std)), tuple(map(float, mean)))
        sf = float(config.get("scaling_factor") or 1.0)
        if mean is not None and std is not None:
            return cls(tuple(float(s) / sf for s in std), tuple(map(float, mean)))
        shift = float(config.get("shift_factor") or 0.0)
        return cls((1.0 / sf,) * channels, (shift,) * channels)

    def apply(self, latent: torch.Tensor) -> torch.Tensor:
        """latent ``[B, C, ...]`` -> z, broadcasting the per-channel factors over the rest."""
        view = (1, len(self.scale)) + (1,) * (latent.dim() - 2)
        scale = torch.tensor(self.scale, dtype=latent.dtype).view(view)
        shift = torch.tensor(self.shift, dtype=latent.dtype).view(view)
        return latent * scale + shift

    def to_json(self) -> dict:
        """The affine as contract data (plain lists)."""
        return {
            "formula": "z = latent * scale + shift",
            "scale": list(self.scale),
            "shift": list(self.shift),
        }


class FrameDecoder(nn.Module):
    """``latent [B, C, h, w]`` -> ``rgb [B, 3, H, W]`` (AutoencoderKL / AutoencoderTiny).

    The same computation as diffusers' ``decode(z).sample`` (no tiling or slicing):
    ``post_quant_conv`` when the KL has one, then the decoder. Range: nominally [-1, 1],
    not clamped (diffusers does not clamp these either).
    """

    def __init__(self, vae: nn.Module, affine: LatentAffine) -> None:
        super().__init__()
        self.vae = vae
        self.affine = affine

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """latent ``[B, C, h, w]`` (the model's) -> rgb ``[B, 3, H, W]``."""
        z = self.affine.apply(latent)
        post = getattr(self.vae, "post_quant_conv", None)
        if post is not None:
            z = post(z)
        return self.vae.decoder(z)


class WanStream:
    """Wan's decoder as a causal stream: one latent frame in, its RGB frames out.

    Every kernel-3 causal conv reads the ``CACHE_T = 2`` frames before its input. diffusers
    keeps them in ``feat_cache`` with a variable length (none, then 1, then 2 frames) and
    zero-pads what is missing; zero frames are exactly that padding, so here each cache is a
    fixed ``[B, C, 2, h_l, w_l]`` tensor that starts at zero and becomes
    ``cat(cache, x, dim=2)[:, :, -2:]`` after every call, the same on every step.

    The first latent frame is special in Wan (diffusers' ``"Rep"`` marker): a temporal
    upsampler skips its time conv and passes its single frame through, so the first call gives
    1 RGB frame and every later call ``2 ** n_temporal_upsamplers`` (4 in Wan 2.1). Its cache
    stays zero, which is what the second call's zero padding reads. Hence two graphs with the
    same cache outputs: ``first`` (latent only; caches start at zero inside) and ``next``
    (latent + caches). Caches are visited in a fixed module order (:meth:`decode`).
    """

    def __init__(self, vae: nn.Module, affine: LatentAffine) -> None:
        self.vae = vae
        self.affine = affine
        self.patch_size = vae.config.get("patch_size")

    def decode(
        self, latent: torch.Tensor, caches: list[torch.Tensor] | None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """latent ``[B, z_dim, 1, h, w]`` -> (frames ``[B, 3, F, H, W]``, updated caches).

        ``caches=None`` is the first call (all-zero history); otherwise the list the previous
        call returned, in the same order.
        """
        state = _Caches(caches)
        dec = self.vae.decoder
        x = self.vae.post_quant_conv(self.affine.apply(latent))  # 1x1x1: per frame
        x = state.conv(dec.conv_in, x)
        mid = dec.mid_block
        x = self._residual(mid.resnets[0], x, state)
        for attn, resnet in zip(mid.attentions, mid.resnets[1:], strict=True):
            x = self._residual(resnet, attn(x), state)  # attention is per frame (spatial)
        for block in dec.up_blocks:
            x = self._up_block(block, x, state)
        x = state.conv(dec.conv_out, dec.nonlinearity(dec.norm_out(x)))
        if self.patch_size is not None:
            x = _unpatchify(x, self.patch_size)
        return x.clamp(-1.0, 1.0), state.done()

    def _residual(self, block: nn.Module, x: torch.Tensor, state: _Caches) -> torch.Tensor:
        """WanResidualBlock: ``shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))))))``."""
        h = block.conv_shortcut(x)  # identity or a 1x1x1 conv: no temporal history
        x = state.conv(block.conv1, block.nonlinearity(block.norm1(x)))
        x = state.conv(block.conv2, block.dropout(block.nonlinearity(block.norm2(x))))
        return x + h

    def _up_block(self, block: nn.Module, x: torch.Tensor, state: _Caches) -> torch.Tensor:
        """WanUpBlock (2.1) or WanResidualUpBlock (2.2, with its DupUp3D shortcut)."""
        skip = x
        for resnet in block.resnets:
            x = self._residual(resnet, x, state)
        sampler = getattr(block, "upsampler", None)
        if sampler is None and getattr(block, "upsamplers", None) is not None:
            sampler = block.upsamplers[0]
        if sampler is not None:
            x = self._resample(sampler, x, state)
        shortcut = getattr(block, "avg_shortcut", None)
        if shortcut is not None:
            x = x + shortcut(skip, first_chunk=state.first)
        return x

    def _resample(self, sampler: nn.Module, x: torch.Tensor, state: _Caches) -> torch.Tensor:
        """WanResample: (temporal x2 for ``upsample3d``, after the first call) then spatial."""
        b, c, t, h, w = x.shape
        if sampler.mode == "upsample3d":
            if state.first:  # "Rep": no time conv; its history stays zero
                state.keep(x.new_zeros(b, c, CACHE_T, h, w))
            else:
                # time_conv gives 2c channels = two sub-frames per frame, interleaved in time
                y = state.conv(sampler.time_conv, x).view(b, 2, c, t, h, w)
                x = y.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)
                t = 2 * t
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = sampler.resample(frames)  # per-frame 2D upsample + conv
        _, c2, h2, w2 = frames.shape
        return frames.view(b, t, c2, h2, w2).permute(0, 2, 1, 3, 4)


class _Caches:
    """The caches of one call, read and written in visiting order."""

    def __init__(self, caches: list[torch.Tensor] | None) -> None:
        self.first = caches is None
        self.inputs = caches
        self.out: list[torch.Tensor] = []

    def conv(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """A kernel-3 causal conv over ``cat(history, x)``; history is zeros on the first call."""
        if self.first:
            b, c, _, h, w = x.shape
            cache = x.new_zeros(b, c, CACHE_T, h, w)
        else:
            if len(self.out) >= len(self.inputs):
                raise StateError(f"Wan stream: only {len(self.inputs)} caches were given")
            cache = self.inputs[len(self.out)]
        self.keep(torch.cat([cache, x], dim=2)[:, :, -CACHE_T:])
        return conv(x, cache)  # diffusers' conv: cache frames replace its causal zero padding

    def keep(self, cache: torch.Tensor) -> None:
        """Record a layer's updated cache; it must have the shape its input cache had."""
        if not self.first and cache.shape != self.inputs[len(self.out)].shape:
            raise StateError(f"Wan stream: cache {len(self.out)} changed shape to {cache.shape}")
        self.out.append(cache)

    def done(self) -> list[torch.Tensor]:
        """The updated caches, after checking that every given cache was read."""
        if not self.first and len(self.out) != len(self.inputs):
            raise StateError(f"Wan stream: {len(self.inputs)} caches given, {len(self.out)} read")
        return self.out


def _unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """``[B, C*p*p, T, h, w] -> [B, C, T, h*p, w*p]`` with Wan 2.2's channel order (q, r)."""
    b, cpp, t, h, w = x.shape
    x = x.view(b, cpp // (p * p), p, p, t, h, w)  # channel = (c, r, q): r along w, q along h
    x = x.permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, cpp // (p * p), t, h * p, w * p)


class WanFirstStep(nn.Module):
    """Exportable first call: ``latent -> (frames [B, 3, 1, H, W], *caches)``."""

    def __init__(self, stream: WanStream) -> None:
        super().__init__()
        self.vae = stream.vae  # registers the weights with the module (export, .to())
        self.stream = stream

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, caches = self.stream.decode(latent, None)
        return (frames, *caches)


class WanNextStep(nn.Module):
    """Exportable later call: ``(latent, *caches) -> (frames [B, 3, F, H, W], *caches)``."""

    def __init__(self, stream: WanStream) -> None:
        super().__init__()
        self.vae = stream.vae  # registers the weights with the module (export, .to())
        self.stream = stream

    def forward(self, latent: torch.Tensor, *caches: torch.Tensor) -> tuple[torch.Tensor, ...]:
        frames, out = self.stream.decode(latent, list(caches))
        return (frames, *out)


def decode_clip(stream: WanStream, latents: torch.Tensor) -> torch.Tensor:
    """``[B, z_dim, T, h, w]`` latents -> ``[B, 3, 1 + F*(T-1), H, W]``, frame by frame."""
    frames, caches = stream.decode(latents[:, :, :1], None)
    out = [frames]
    for i in range(1, latents.shape[2]):
        frames, caches = stream.decode(latents[:, :, i : i + 1], caches)
        out.append(frames)
    return torch.cat(out, dim=2)


def decoder_from_folder(folder: str | Path) -> FrameDecoder | WanStream:
    """The wrapper for a local diffusers folder: FrameDecoder or WanStream by class name."""
    config = read_source_config(folder)
    vae = load_autoencoder(folder, config)
    affine = LatentAffine.from_config(config)
    if config["_class_name"] in VIDEO_CLASSES:
        return WanStream(vae, affine)
    return FrameDecoder(vae, affine)
