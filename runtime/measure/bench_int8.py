"""The ``ort-int8`` rows of ``pomexport bench``: the int8 artifact on ONNX Runtime's CPU EP.

Like the fp32/fp16 rows (:mod:`pomexport.runtime.measure.bench_ort`), the artifact is built once per
(weights, config, exporter and calibration code) into the bench cache, from the cached fp32
export, with a small calibration set sampled from the model itself; every row (each in its
own process) reuses it. The CPU EP runs its uint8-activation encoding (``model.ort-cpu.onnx``).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pomexport.calibration.capture import CaptureSettings
from pomexport.export.artifact.layout import MANIFEST

if TYPE_CHECKING:
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.runtime.ort_backend import OrtBackend

log = logging.getLogger(__name__)

# A bench measures speed: a small calibration set (quality is the acceptance tests' job).
BENCH_CAPTURE = CaptureSettings(seeds=(0,), frames=2, steps=4, samples=64)


def _calibration_digest() -> str:
    digest = hashlib.sha256(repr(BENCH_CAPTURE).encode())
    import pomexport.calibration as calibration

    for path in sorted(Path(calibration.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cached_int8_artifact(model: PoMDiT) -> Path:
    """The int8 artifact of ``model`` in the bench cache, calibrated on the first call."""
    from pomexport.calibration.api import CalibrationOptions, quantize_artifact
    from pomexport.export.artifact import edit_artifact
    from pomexport.runtime.measure.bench_ort import (
        artifact_key,
        cache_root,
        cached_artifact,
        load_cached,
        publish_staged,
    )

    final = cache_root() / f"{artifact_key(model, 'fp32')}-{_calibration_digest()}-int8"
    if (final / MANIFEST).is_file():
        return final
    fp32 = cached_artifact(model, "fp32")

    def calibrate(staging: Path) -> None:
        shutil.copytree(fp32, staging, dirs_exist_ok=True)
        with edit_artifact(load_cached(staging)) as draft:
            quantize_artifact(draft, model, CalibrationOptions(capture=BENCH_CAPTURE))

    log.info("calibrating the bench artifact %s", final)
    return publish_staged(final, calibrate)


def ort_cpu_int8(model: PoMDiT) -> OrtBackend:
    """ONNX Runtime CPU EP on the int8 artifact of ``model``; threads follow torch's."""
    from torch import get_num_threads as torch_threads

    from pomexport.runtime.measure.bench_ort import load_cached
    from pomexport.runtime.ort_backend import OrtBackend

    artifact = load_cached(cached_int8_artifact(model))
    return OrtBackend(artifact, backend="ort", threads=torch_threads())


def interleaved_step_latency(
    backends: dict[str, OrtBackend], batch: int = 1, repeats: int = 30, warmup: int = 3
) -> dict[str, dict[str, float]]:
    """Median and min step latency (ms) of each backend, their steps interleaved.

    One step of each backend in turn, ``repeats`` rounds: on a shared machine, load changes
    hit every backend alike, so their ratio is fair even when the absolute times drift.
    Inputs: the step at t = 0.5 of frame 1 over a random committed state.
    """
    import time

    import torch

    prepared = {}
    for label, backend in backends.items():
        cfg = backend.config
        io = backend.allocate(batch)
        gen = torch.Generator().manual_seed(0)
        io.x_t.copy_(torch.randn(io.x_t.shape, generator=gen))
        io.t.fill_(0.5)
        io.frame_index.fill_(1)
        state = torch.randn(cfg.depth, batch, cfg.state_width, generator=gen)
        count = torch.full((batch,), float(cfg.tokens_per_frame))
        prepared[label] = (backend, io, state, count, torch.empty_like(state))
    times: dict[str, list[float]] = {label: [] for label in backends}
    for round_ in range(warmup + repeats):
        for label, (backend, io, state, count, out) in prepared.items():
            start = time.perf_counter()
            backend.step(io, state, count, out)
            if round_ >= warmup:
                times[label].append((time.perf_counter() - start) * 1e3)
    return {
        label: {"median_ms": float(np.median(t)), "min_ms": float(np.min(t))}
        for label, t in times.items()
    }
