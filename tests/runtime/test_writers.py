"""Writers: npy round trip, png/gif pixels and sizes, mp4 decodes, bad paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pomexport.errors import ConfigError
from pomexport.runtime import write_video
from pomexport.runtime.writers import default_scale, open_video, to_rgb_frames


@pytest.fixture
def latents() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 3, 8, 8, generator=g) * 2.2 - 1.1  # a little out of range too


def _pixels(latents: torch.Tensor, stream: int, frame: int) -> np.ndarray:
    x = ((latents[stream, frame] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(1, 2, 0).numpy()


def test_npy_round_trips_exactly(latents, tmp_path):
    (path,) = write_video(latents, tmp_path / "clip.npy")
    assert np.array_equal(np.load(path), latents.numpy())


def test_png_frames_tile_streams_and_upscale_nearest(latents, tmp_path):
    written = write_video(latents, tmp_path / "clip.png", scale=3)
    assert [p.name for p in written] == ["clip_0000.png", "clip_0001.png", "clip_0002.png"]
    image = np.asarray(Image.open(written[1]))
    assert image.shape == (8 * 3, 2 * 8 * 3, 3)
    assert np.array_equal(image[::3, : 8 * 3 : 3], _pixels(latents, 0, 1))
    assert np.array_equal(image[::3, 8 * 3 :: 3], _pixels(latents, 1, 1))
    assert np.array_equal(image[1::3, 1 : 8 * 3 : 3], _pixels(latents, 0, 1))  # nearest


def test_gif_has_every_frame_and_default_scale(latents, tmp_path):
    (path,) = write_video(latents, tmp_path / "clip.gif")
    assert default_scale(8) == 32 and default_scale(16) == 16 and default_scale(300) == 1
    image = Image.open(path)
    assert image.n_frames == 3 and image.size == (2 * 8 * 32, 8 * 32)


def test_mp4_decodes_to_every_frame(latents, tmp_path):
    import av  # a dependency of pomexport (mp4 output)

    (path,) = write_video(latents[:1], tmp_path / "clip.mp4", scale=5)  # 40 px: even already
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].shape == (40, 40, 3)
    # lossy codec: compare loosely with what went in
    expected = to_rgb_frames(latents[:1], 5)[0].astype(np.float32)
    assert np.abs(frames[0].astype(np.float32) - expected).mean() < 40


def test_single_channel_and_bad_inputs(tmp_path):
    grey = torch.zeros(1, 2, 1, 4, 4)
    assert to_rgb_frames(grey, 1)[0].shape == (4, 4, 3)
    with pytest.raises(ConfigError, match="extension"):
        write_video(grey, tmp_path / "clip.avi")
    with pytest.raises(ConfigError, match="folder"):
        write_video(grey, tmp_path / "missing" / "clip.gif")
    with pytest.raises(ConfigError, match="2-channel"):
        write_video(torch.zeros(1, 1, 2, 4, 4), tmp_path / "clip.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize("suffix", [".npy", ".mp4", ".gif"])
def test_frame_by_frame_sink_writes_what_write_video_writes(latents, tmp_path, suffix):
    (whole,) = write_video(latents, tmp_path / f"whole{suffix}", scale=2)
    with open_video(tmp_path / f"streamed{suffix}", latents.shape[1], scale=2) as sink:
        for f in range(latents.shape[1]):
            sink.write(latents[:, f])
        (streamed,) = sink.close()
    if suffix == ".npy":
        assert np.array_equal(np.load(streamed), latents.numpy())
    else:
        assert streamed.read_bytes() == whole.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([whole.name, streamed.name])


@pytest.mark.parametrize("suffix", [".npy", ".mp4"])
def test_an_interrupted_stream_leaves_no_file(latents, tmp_path, suffix):
    with pytest.raises(KeyboardInterrupt):
        with open_video(tmp_path / f"clip{suffix}", 3, scale=1) as sink:
            sink.write(latents[:, 0])
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_npy_sink_refuses_a_short_stream(latents, tmp_path):
    sink = open_video(tmp_path / "clip.npy", 3)
    sink.write(latents[:, 0])
    with pytest.raises(ConfigError, match="1 of 3 frames"):
        sink.close()
    assert list(tmp_path.iterdir()) == []


def test_a_lossless_mp4_decodes_to_exactly_the_frames_written(latents, tmp_path):
    """libx264rgb at qp 0: what a reader decodes is the writer's uint8 frame, bit for bit
    (the default .mp4 is yuv420p H.264: lossy)."""
    import av

    with open_video(tmp_path / "clip.mp4", latents.shape[1], scale=3, lossless=True) as sink:
        for f in range(latents.shape[1]):
            sink.write(latents[:, f])
        (path,) = sink.close()
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    written = to_rgb_frames(latents, 3)
    assert len(decoded) == len(written) == latents.shape[1]
    assert all(np.array_equal(d, w) for d, w in zip(decoded, written, strict=True))


def test_lossless_is_refused_for_other_formats(tmp_path):
    with pytest.raises(ConfigError, match="--lossless applies to .mp4 output, not .gif"):
        open_video(tmp_path / "clip.gif", 3, lossless=True)
    assert list(tmp_path.iterdir()) == []
