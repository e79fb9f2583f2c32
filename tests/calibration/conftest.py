"""One fp32 artifact and its int8 calibration, built once per test session (export is the
slow part). The bundled model when its weights are installed, else the ``tiny`` preset."""

from __future__ import annotations

import shutil

import pytest

from pomexport.models.registry import BUNDLED, bundled_path

BUNDLED_NAME = next(iter(BUNDLED))
CAPTURE = dict(samples=96, frames=3, steps=4, seeds=(0,))


def model_name() -> str:
    return BUNDLED_NAME if bundled_path(BUNDLED_NAME).is_file() else "tiny"


@pytest.fixture(scope="session")
def calibrated_model() -> str:
    """The model name the session's artifacts were built from."""
    return model_name()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """(fp32 Artifact, int8 Artifact) of :func:`model_name`, default method (percentile)."""
    from pomexport.calibration import CalibrationOptions, CaptureSettings, quantize_artifact
    from pomexport.export.api import export_model

    root = tmp_path_factory.mktemp("calibration")
    fp32 = export_model(model_name(), root / "fp32", "fp32", "both", batch=(1, 2, 8))
    shutil.copytree(fp32.root, root / "int8")
    options = CalibrationOptions("percentile", CaptureSettings(**CAPTURE))
    int8 = quantize_artifact(root / "int8", model_name(), options)
    return fp32, int8


@pytest.fixture(scope="session")
def stationary_int8(stationary_artifact, tmp_path_factory):
    """``(int8 Artifact, model)``: the session's stationary-state artifact (decay 0.6,
    max_frame_index 2) calibrated like the one above, on a smaller capture (3 frames: the
    state is discounted from the second one on)."""
    from pomexport.calibration import CalibrationOptions, CaptureSettings, quantize_artifact

    fp32, model = stationary_artifact
    root = tmp_path_factory.mktemp("calibration-stationary") / "int8"
    shutil.copytree(fp32.root, root)
    capture = CaptureSettings(samples=48, frames=3, steps=2, seeds=(0,))
    return quantize_artifact(root, model, CalibrationOptions("percentile", capture)), model
