"""The ``ort-int8`` rows of ``pomexport bench``: the int8 artifact on ONNX Runtime's CPU EP.

Like the fp32/fp16 rows (:mod:`pomexport.runtime.bench_ort`), the artifact is built once per
(weights, config, exporter and calibration code) into the bench cache, from the cached fp32
export, with a small calibration set sampled from the model itself; every row (each in its
own process) reuses it. The CPU EP runs its uint8-activation encoding (``model.ort-cpu.onnx``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pomexport.calibration.capture import CaptureSettings

if TYPE_CHECKING:
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.runtime.ort_backend import OrtBackend

log = logging.getLogger(__name__)

# A bench measures speed: a small calibration set (quality is the acceptance tests' job).
BENCH_CAPTURE = CaptureSettings(seeds=(0,), frames=2, steps=4, samples=64)


def _calibration_digest() -> str:
    digest = hashlib.sha256(repr(BENCH_CAPTURE).encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cached_int8_artifact(model: PoMDiT) -> Path:
    """The int8 artifact of ``model`` in the bench cache, calibrated on the first call."""
    from pomexport.calibration.api import CalibrationOptions, quantize_artifact
    from pomexport.runtime.bench_ort import artifact_key, cache_root, cached_artifact

    final = cache_root() / f"{artifact_key(model, 'fp32')}-{_calibration_digest()}-int8"
    if (final / "manifest.json").is_file():
        return final
    fp32 = cached_artifact(model, "fp32")
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        shutil.copytree(fp32, staging, dirs_exist_ok=True)
        log.info("calibrating the bench artifact %s", final)
        quantize_artifact(staging, model, CalibrationOptions(capture=BENCH_CAPTURE))
        try:
            os.replace(staging, final)
        except OSError:  # another process finished the same calibration first
            if not (final / "manifest.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def ort_cpu_int8(model: PoMDiT) -> OrtBackend:
    """ONNX Runtime CPU EP on the int8 artifact of ``model``; threads follow torch's."""
    from pomexport.runtime.ort_backend import OrtBackend

    return OrtBackend(cached_int8_artifact(model), backend="ort")
