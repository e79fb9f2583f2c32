"""Acceptance: the int8 artifact generates, on ONNX Runtime CPU, what the fp32 one does.

PSNR of the int8 clip against the fp32 clip (same seeds, uint8 pixels) over 16 frames, and
the bundled model's quality metric (models/quality.py) within 10 % of fp32's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pomexport.calibration.capture import CaptureSettings, capture_model
from pomexport.models import PoMDiT, load_model
from pomexport.models.registry import DEFAULT_MODEL

FRAMES, STEPS, CFG = 16, 6, 2.0
MIN_PSNR_DB = 25.0
MIN_CLOSE_STREAMS = 6  # of 8
QUALITY_TOLERANCE = 0.10


def _pixels(clip: torch.Tensor) -> np.ndarray:
    return np.clip(np.round((clip.numpy().astype(np.float64) + 1.0) * 127.5), 0, 255)


def psnr(actual: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float(np.mean((_pixels(actual) - _pixels(reference)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def clips(artifacts):
    from pomexport.runtime import generate
    from pomexport.runtime.ort_backend import OrtBackend

    labels = list(range(0, 36, 5))  # 8 classes, 4 streams per batch (x2 rows with CFG)
    out = {}
    for artifact in artifacts:
        backend = OrtBackend(artifact.root, "ort", threads=1)
        # the CPU EP runs the uint8-activation encoding of an int8 artifact
        want = "model.ort-cpu.onnx" if artifact.precision == "int8" else "model.onnx"
        assert backend._onnx_path().name == want
        parts = [generate(backend, labels[i : i + 4], FRAMES, STEPS, CFG, seed=3 + i)
                 for i in range(0, len(labels), 4)]  # fmt: skip
        out[artifact.precision] = torch.cat(parts)
    return torch.tensor(labels), out


def test_int8_clip_matches_fp32_clip(clips):
    """Per stream: the sampler is chaotic, so an int8 rounding can make a stream pick another
    start in its first frames and then draw a different clip of the same quality (measured on
    the stationary bundled model: 6 of 8 streams 39-47 dB, 2 at 17.6 dB, quality identical;
    the metric test below checks quality). Most streams must follow fp32 closely."""
    _, out = clips
    assert out["int8"].shape == out["fp32"].shape == (8, FRAMES, *out["fp32"].shape[2:])
    values = [psnr(out["int8"][i], out["fp32"][i]) for i in range(8)]
    close = sum(v >= MIN_PSNR_DB for v in values)
    assert close >= MIN_CLOSE_STREAMS, f"int8 vs fp32 PSNR per stream {values} dB"


def test_int8_quality_metric_within_ten_percent(clips, calibrated_model):
    """int8 >= 90 % of fp32 on both fractions, less two binomial standard errors of the fp32
    estimate: 8 clips give 128 frames / 120 pairs, whose sampling noise alone exceeds 10 %
    of a small fraction (36 clips, in calibration/README.md, are within 10 % outright)."""
    assert calibrated_model == DEFAULT_MODEL, "the metric needs the trained (bundled) model"
    from pomexport.models.quality import score_clips

    labels, out = clips
    fp32, int8 = (score_clips(out[k], labels) for k in ("fp32", "int8"))
    counts = {"single_blob": fp32.clips * fp32.frames, "consistency": fp32.clips * (FRAMES - 1)}
    for name, n in counts.items():
        want, got = getattr(fp32, name), getattr(int8, name)
        noise = 2.0 * math.sqrt(want * (1.0 - want) / n)
        bound = (1 - QUALITY_TOLERANCE) * want - noise
        assert got >= bound, f"{name}: int8 {got:.3f} vs fp32 {want:.3f} (bound {bound:.3f})"


def test_capture_records_the_sampler_within_the_cap():
    model = load_model("tiny")
    settings = CaptureSettings(labels=(1, 5), seeds=(0, 1), frames=2, steps=3, samples=20)
    data = capture_model(model, settings)
    assert len(data) == 20  # 2 seeds x 2 streams x 2 frames x (3 + 1 commit) = 32 rows seen
    feeds = data.feeds
    assert feeds["state"].shape == (model.cfg.depth, 20, model.cfg.state_width)
    times = {round(float(t), 6) for t in feeds["t"]}
    assert times <= {1.0, round(2 / 3, 6), round(1 / 3, 6), 0.0}
    assert set(feeds["label"].tolist()) <= {1, 5} and set(feeds["frame_index"]) <= {0, 1}
    # frame 0 reads the empty state; frame 1 the committed one (count = tokens per frame)
    first = feeds["frame_index"] == 0
    assert np.all(feeds["state"][:, first] == 0) and np.all(feeds["count"][first] == 0)
    assert np.all(feeds["count"][~first] == model.cfg.tokens_per_frame)
    assert np.abs(feeds["state"][:, ~first]).sum() > 0


def test_calibration_set_round_trips_and_is_checked_against_the_model(tmp_path):
    from pomexport.calibration.api import CalibrationOptions, calibration_data
    from pomexport.errors import ConfigError

    model = load_model("tiny")
    path = tmp_path / "set.npz"
    settings = CaptureSettings(seeds=(0,), frames=1, steps=1, samples=6)
    saved = calibration_data(model, CalibrationOptions(capture=settings, save_set=str(path)))
    loaded = calibration_data(model, CalibrationOptions(calibration_set=str(path)))
    assert saved.feeds.keys() == loaded.feeds.keys()
    for name, value in saved.feeds.items():
        np.testing.assert_array_equal(loaded.feeds[name], value)
    other = PoMDiT(model.cfg.replace(depth=2))
    with pytest.raises(ConfigError, match="calibration set of another model"):
        calibration_data(other, CalibrationOptions(calibration_set=str(path)))


def test_stationary_int8_passes_the_int8_gates_against_torch(stationary_int8):
    """Issue 18: the int8 artifact of a decay 0.6 model (uint8 encoding on the CPU), frame by
    frame against the torch model over 4 frames (past max_frame_index 2): every step within
    export/artifact/gates.py's int8 bounds, every frame's PSNR too. The capture ran the discounted
    sampler (count in tokens, as every runtime advances it)."""
    from pomexport.export.artifact.gates import DEFAULT_GATES
    from pomexport.runtime.measure.verify import verify

    int8, model = stationary_int8
    n = model.cfg.tokens_per_frame
    counts = np.unique(np.load(int8.path("calibration-set.npz"))["count"])
    assert counts.tolist() == [0.0, n, 2.0 * n]
    report = verify(int8, frames=4, steps=1, seeds=1, reference_model=model)
    assert report.summary["gates"] == DEFAULT_GATES["int8"].to_dict()
    assert report, report.failures
