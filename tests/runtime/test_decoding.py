"""Decoding right after each commit (runtime/decoding.py, runtime/ort_decoder.py; issue 21).

What generate writes with a decoder is compared with diffusers' own ``decode`` of the latents
the runtime produced (the same artifact, seed and options through ``generate``): the .npy
holds the float RGB frames the writer received (fp32: within 1e-4), the .png frames are those
after the writer's uint8 conversion, exactly, and the .mp4 is the same frames through H.264,
which is lossy (yuv420p halves the chroma resolution), so it is compared by PSNR.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pomexport.errors import ConfigError
from pomexport.runtime import GenerateOptions, SamplerSettings, generate, generate_clip
from pomexport.runtime.loading import load_backend
from pomexport.runtime.measure.rss import current_rss
from pomexport.runtime.ort_decoder import OrtDecoder
from pomexport.runtime.writers import default_scale, to_rgb_frames

OPTIONS = GenerateOptions(frames=3, labels=(1, 2), sampling=SamplerSettings(steps=2, cfg_scale=2.0))


def diffusers_decode(decoders, name: str, latents: torch.Tensor) -> np.ndarray:
    """(B, F, C, h, w) model latents -> (B, F', 3, H, W) by diffusers' decode, de-scaled by
    hand from the autoencoder's config (what a diffusers pipeline does before decoding)."""
    vae = decoders.vaes[name]
    with torch.no_grad():
        if name == "wan":
            view = (1, -1, 1, 1, 1)
            mean = torch.tensor(vae.config.latents_mean).view(view)
            std = torch.tensor(vae.config.latents_std).view(view)
            z = latents.permute(0, 2, 1, 3, 4) * std + mean  # (B, C, T, h, w)
            return vae.decode(z).sample.permute(0, 2, 1, 3, 4).numpy()
        z = latents.flatten(0, 1) / vae.config.scaling_factor + vae.config.shift_factor
        rgb = vae.decode(z).sample
        return rgb.view(*latents.shape[:2], *rgb.shape[1:]).numpy()


def runtime_latents(artifact) -> torch.Tensor:
    """The latents the runtime produces for OPTIONS (generate is deterministic by seed)."""
    runner = load_backend(artifact.root, backend="ort")
    return generate(runner, OPTIONS.labels, OPTIONS.frames, **OPTIONS.sampling.as_kwargs())


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def read_mp4(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.slow  # builds the two decoder artifacts (~40 s, once per session)
@pytest.mark.parametrize("name", ["kl", "wan"])
def test_generate_writes_the_decoded_latents_of_the_runtime(decoders, tmp_path, name):
    artifact = decoders.artifact(name)
    ref = diffusers_decode(decoders, name, runtime_latents(artifact))
    frames = 1 + 4 * (OPTIONS.frames - 1) if name == "wan" else OPTIONS.frames
    size = 128 if name == "wan" else 32  # 16x16 latents; the tiny KL upsamples x2
    assert ref.shape == (2, frames, 3, size, size) and ref.std() > 0.05
    lines = []
    results = {
        ext: generate_clip(artifact.root, tmp_path / f"clip{ext}", OPTIONS, log=lines.append)
        for ext in (".npy", ".png", ".mp4")
    }
    assert f"{OPTIONS.frames} latent frames -> {frames} RGB frames" in lines[1]
    assert f"decoded to {frames} RGB frames" in results[".mp4"].summary
    received = np.load(tmp_path / "clip.npy")  # the float frames the writer was given
    err = float(np.abs(received - ref).max())
    assert received.shape == ref.shape and err < 1e-4, err
    scale = default_scale(size)
    expected = to_rgb_frames(torch.from_numpy(ref), scale)  # the writer's uint8 conversion
    written = to_rgb_frames(torch.from_numpy(received), scale)
    from PIL import Image

    pngs = np.stack([np.asarray(Image.open(p)) for p in results[".png"].files])
    assert pngs.shape == np.shape(written) and np.array_equal(pngs, np.stack(written))
    off = np.abs(pngs.astype(int) - np.stack(expected)).max()
    same = float(np.mean(pngs == np.stack(expected)))
    assert off <= 1 and same > 0.999, (off, same)  # fp32 rounding at a uint8 step, at most
    mp4 = np.stack(read_mp4(tmp_path / "clip.mp4"))
    assert mp4.shape == pngs.shape
    db = min(psnr_u8(a, b) for a, b in zip(mp4, pngs, strict=True))
    print(f"{name}: fp32 max abs {err:.3g}, uint8 equal {same:.5f}, mp4 min PSNR {db:.1f} dB")
    assert db > 30.0


@pytest.mark.slow  # the decoder artifacts of the test above (built once per session)
@pytest.mark.parametrize("name", ["kl", "wan"])
def test_a_lossless_mp4_holds_exactly_the_decoded_frames_of_the_runtime(decoders, tmp_path, name):
    """generate --lossless: the .mp4's frames equal, bit for bit, the uint8 frames of the RGB
    the runtime decoded (its .npy, converted as the writer converts)."""
    artifact = decoders.artifact(name)
    generate_clip(artifact.root, tmp_path / "clip.npy", OPTIONS)
    lossless = GenerateOptions(**{**OPTIONS.__dict__, "lossless": True})
    (path,) = generate_clip(artifact.root, tmp_path / "clip.mp4", lossless).files
    received = torch.from_numpy(np.load(tmp_path / "clip.npy"))
    written = np.stack(to_rgb_frames(received, default_scale(received.shape[-2])))
    mp4 = np.stack(read_mp4(path))
    assert mp4.shape == written.shape and np.array_equal(mp4, written)


def test_a_model_on_torch_decodes_with_the_folder_it_is_given(decoders, tmp_path):
    from pomexport.models.registry import random_model

    folder = decoders.source("tiny")
    lines = []
    generate_clip("sd-latent-tiny", tmp_path / "t.npy", OPTIONS, log=lines.append, decoder=folder)
    latents = generate(random_model("sd-latent-tiny"), OPTIONS.labels, OPTIONS.frames,
                       **OPTIONS.sampling.as_kwargs())  # fmt: skip
    with torch.no_grad():  # TAESD: no scaling, decode(latent) as is
        ref = decoders.vaes["tiny"].decode(latents.flatten(0, 1)).sample
    got = torch.from_numpy(np.load(tmp_path / "t.npy")).flatten(0, 1)
    assert "AutoencoderTiny on torch" in lines[1]
    assert got.shape == ref.shape and float((got - ref).abs().max()) < 1e-5


def test_an_artifact_refuses_a_decoder_folder(decoders, tmp_path):
    with pytest.raises(ConfigError, match="carries its own decoder"):
        generate_clip(decoders.artifact("kl").root, tmp_path / "a.npy", OPTIONS,
                      decoder=decoders.source("kl"))  # fmt: skip


@pytest.mark.slow  # 256 decoder calls
def test_wan_stream_of_256_frames_holds_constant_memory(decoders):
    decoder = OrtDecoder.from_artifact(decoders.artifact("wan"))
    decoder.start(0)
    sets = decoder._streams.cache_sets(0)
    buffers = {(t.data_ptr(), tuple(t.shape)) for s in sets for t in s}
    gen = torch.Generator().manual_seed(3)
    rss, shapes = [], set()
    for index in range(256):
        frames = decoder.decode(0, torch.randn(16, 16, 16, generator=gen))
        shapes.add(tuple(frames.shape))
        if index >= 32 and index % 8 == 0:  # after the warm-up (ORT's arenas)
            rss.append((index, current_rss()))
        now = {(t.data_ptr(), tuple(t.shape)) for s in sets for t in s}
        assert now == buffers  # the same two cache sets, same shapes, every call
    assert shapes == {(1, 3, 128, 128), (4, 3, 128, 128)}
    assert len(decoder._bindings) == 3  # first, next A->B, next B->A: made once
    index, values = np.array(rss).T
    slope = np.polyfit(index, values, 1)[0]  # bytes per latent frame
    print(f"RSS {values[0] / 2**20:.1f} -> {values[-1] / 2**20:.1f} MiB, {slope:.0f} B/frame")
    # One decoded call is 4 x 3 x 128 x 128 fp32 = 768 KiB: keeping them would be 100x this.
    assert slope < 8 * 1024


def test_an_artifact_without_a_decoder_runs_unchanged(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    assert artifact.decoder is None and "decoder" not in artifact.manifest
    assert not [n for n in artifact.files if n.startswith("decoder/")]
    lines = []
    options = GenerateOptions(frames=2, labels=(0, 3), sampling=SamplerSettings(steps=2))
    generate_clip(artifact.root, tmp_path / "x.npy", options, log=lines.append)
    runner = load_backend(artifact.root, backend="ort")
    latents = generate(runner, options.labels, options.frames, **options.sampling.as_kwargs())
    assert np.array_equal(np.load(tmp_path / "x.npy"), latents.numpy())
    assert len(lines) == 1 and lines[0].startswith("backend: ")  # nothing about decoding


def test_a_latent_model_without_a_decoder_writes_latents_and_says_so(tmp_path):
    from pomexport.models.registry import random_model

    lines = []
    options = GenerateOptions(frames=2, sampling=SamplerSettings(steps=2))
    generate_clip("sd-latent-tiny", tmp_path / "l.npy", options, log=lines.append)
    latents = generate(random_model("sd-latent-tiny"), options.labels, options.frames,
                       **options.sampling.as_kwargs())  # fmt: skip
    assert np.array_equal(np.load(tmp_path / "l.npy"), latents.numpy())
    assert len(lines) == 2 and "no decoder" in lines[1] and "4-channel latents" in lines[1]
