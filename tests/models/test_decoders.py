"""Latent decoders in torch (models/decoders.py) against diffusers' own ``decode``.

Sources are tiny random-weight diffusers autoencoders built from a config, written with
``save_pretrained`` and loaded back by pomexport; the reference is diffusers' ``decode`` of
``z = latent * scale + shift`` computed here by hand from the same config.
"""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, AutoencoderTiny

from pomexport.errors import ArtifactError, ConfigError, StateError
from pomexport.models.decoders import (
    FrameDecoder,
    LatentAffine,
    WanStream,
    decode_clip,
    decoder_from_folder,
)

MEAN, STD = [0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 2.0, 1.0]


def tiny_kl() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=4,
        scaling_factor=0.3,
        shift_factor=0.1,
    )


def tiny_taesd() -> AutoencoderTiny:
    return AutoencoderTiny(
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
    )


def tiny_wan(**changes) -> AutoencoderKLWan:
    """Wan 2.1's layout (3 up blocks, 2 temporal upsamplers) at width 8, z_dim 4."""
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=MEAN,
        latents_std=STD,
        **changes,
    )
    with torch.no_grad():  # keep the clamp of decode mostly inactive, so values are compared
        vae.decoder.conv_out.weight.mul_(0.25)
    return vae


def wan_reference(vae: AutoencoderKLWan, latents: torch.Tensor) -> torch.Tensor:
    """diffusers' whole-clip decode of the model's latents (Wan pipelines' de-normalisation)."""
    z = latents * torch.tensor(STD).view(1, 4, 1, 1, 1) + torch.tensor(MEAN).view(1, 4, 1, 1, 1)
    with torch.no_grad():
        return vae.decode(z).sample


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    vaes = {"kl": tiny_kl(), "tiny": tiny_taesd(), "wan": tiny_wan()}
    for name, vae in vaes.items():
        vae.save_pretrained(root / name)
    return root, vaes


@pytest.mark.parametrize(("name", "sf", "shift"), [("kl", 0.3, 0.1), ("tiny", 1.0, 0.0)])
def test_frame_decoder_equals_diffusers_decode(sources, name, sf, shift):
    root, vaes = sources
    decoder = decoder_from_folder(root / name)
    assert isinstance(decoder, FrameDecoder)
    latent = torch.randn(2, 4, 6, 5, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = vaes[name].decode(latent / sf + shift).sample
        out = decoder(latent)
    assert out.shape == ref.shape == (2, 3, 12, 10)
    assert ref.std() > 0.05  # a real image-like signal, not a constant
    assert (out - ref).abs().max() < 1e-5


def test_wan_stream_equals_whole_clip_decode(sources):
    root, vaes = sources
    stream = decoder_from_folder(root / "wan")
    assert isinstance(stream, WanStream)
    latents = torch.randn(1, 4, 5, 4, 6, generator=torch.Generator().manual_seed(2))
    ref = wan_reference(vaes["wan"], latents)
    with torch.no_grad():
        out = decode_clip(stream, latents)
    assert out.shape == ref.shape == (1, 3, 1 + 4 * 4, 32, 48)
    assert (ref.abs() < 1).float().mean() > 0.9 and ref.std() > 0.05  # values, not the clamp
    assert (out - ref).abs().max() < 1e-4


def test_wan_first_call_gives_one_frame_then_four(sources):
    root, _ = sources
    stream = decoder_from_folder(root / "wan")
    latent = torch.randn(1, 4, 1, 4, 4)
    with torch.no_grad():
        first, caches = stream.decode(latent, None)
        later, again = stream.decode(latent, caches)
    assert first.shape[2] == 1 and later.shape[2] == 4
    assert [c.shape for c in caches] == [c.shape for c in again]
    assert all(c.shape[2] == 2 for c in caches)


def test_wan_stream_refuses_a_wrong_cache_list(sources):
    root, _ = sources
    stream = decoder_from_folder(root / "wan")
    latent = torch.randn(1, 4, 1, 2, 2)
    with torch.no_grad():
        _, caches = stream.decode(latent, None)
        with pytest.raises(StateError, match="caches were given"):
            stream.decode(latent, caches[:-1])
        with pytest.raises(StateError, match="read"):
            stream.decode(latent, [*caches, caches[0]])
        with pytest.raises(StateError, match="changed shape"):
            stream.decode(latent, [caches[0][:, :, :1], *caches[1:]])


def test_wan_long_stream_keeps_cache_shapes_and_equals_decode(sources):
    """64 latent frames (253 RGB frames): same caches every step, same video as diffusers."""
    root, vaes = sources
    stream = decoder_from_folder(root / "wan")
    latents = torch.randn(1, 4, 64, 2, 2, generator=torch.Generator().manual_seed(3))
    ref = wan_reference(vaes["wan"], latents)
    shapes, out = set(), []
    with torch.no_grad():
        frames, caches = stream.decode(latents[:, :, :1], None)
        out.append(frames)
        for i in range(1, 64):
            frames, caches = stream.decode(latents[:, :, i : i + 1], caches)
            shapes.add(tuple(tuple(c.shape) for c in caches))
            out.append(frames)
    assert len(shapes) == 1
    video = torch.cat(out, dim=2)
    assert video.shape == ref.shape == (1, 3, 1 + 4 * 63, 16, 16)
    assert (video - ref).abs().max() < 1e-4


def test_wan22_residual_patched_layout_equals_decode(tmp_path):
    """Wan 2.2's decoder layout (residual up blocks with DupUp3D, patch size 2) streams too."""
    torch.manual_seed(0)
    vae = tiny_wan(is_residual=True, patch_size=2, in_channels=12, out_channels=12)
    vae.save_pretrained(tmp_path / "wan22")
    stream = decoder_from_folder(tmp_path / "wan22")
    latents = torch.randn(1, 4, 3, 2, 3, generator=torch.Generator().manual_seed(4))
    ref = wan_reference(vae, latents)
    with torch.no_grad():
        out = decode_clip(stream, latents)
    assert out.shape == ref.shape == (1, 3, 9, 32, 48)
    assert (out - ref).abs().max() < 1e-4


def test_latent_affine_conventions():
    kl = LatentAffine.from_config(
        {
            "_class_name": "AutoencoderKL",
            "latent_channels": 2,
            "scaling_factor": 0.5,
            "shift_factor": 0.25,
        }
    )
    assert kl.scale == (2.0, 2.0) and kl.shift == (0.25, 0.25)
    sdxl = LatentAffine.from_config(
        {
            "_class_name": "AutoencoderKL",
            "latent_channels": 2,
            "scaling_factor": 0.5,
            "latents_mean": [1.0, 2.0],
            "latents_std": [3.0, 4.0],
        }
    )
    assert sdxl.scale == (6.0, 8.0) and sdxl.shift == (1.0, 2.0)
    wan = LatentAffine.from_config(
        {"_class_name": "AutoencoderKLWan", "z_dim": 4, "latents_mean": MEAN, "latents_std": STD}
    )
    assert wan.scale == tuple(STD) and wan.shift == tuple(MEAN)
    latent = torch.ones(1, 4, 1, 1, 1)
    assert torch.equal(wan.apply(latent).flatten(), torch.tensor(STD) + torch.tensor(MEAN))


def test_refuses_what_is_not_a_local_save_pretrained_folder(tmp_path, sources):
    root, vaes = sources
    with pytest.raises(ArtifactError, match="not a local directory"):
        decoder_from_folder("stabilityai/sd-vae-ft-mse")  # a hub id is never downloaded
    with pytest.raises(ArtifactError, match="config.json"):
        decoder_from_folder(tmp_path)
    vaes["tiny"].save_pretrained(tmp_path / "pickled", safe_serialization=False)
    with pytest.raises(ArtifactError, match="only safetensors"):
        decoder_from_folder(tmp_path / "pickled")
    other = tmp_path / "unet"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ConfigError, match="UNet2DModel"):
        decoder_from_folder(other)
