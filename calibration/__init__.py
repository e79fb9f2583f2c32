"""INT8 calibration (docs/design.md §4): trajectory capture, calibrators, Q/DQ insertion, report.

    from pomexport.calibration import CalibrationOptions
    from pomexport.export.pipeline import calibrate
    artifact = calibrate("pom-dit-video-tiny", "build/int8", CalibrationOptions("percentile"))

Heavy modules (onnx, onnxruntime, the exporter) load on first use.
"""

from __future__ import annotations

from pomexport.lazy import lazy_exports

_LAZY = {
    "CalibrationOptions": "pomexport.calibration.api",
    "QuantizedGraphs": "pomexport.calibration.api",
    "quantize_artifact": "pomexport.calibration.api",
    "quantize_graph": "pomexport.calibration.api",
    "ORT_CPU": "pomexport.calibration.api",
    "ORT_CPU_FILE": "pomexport.calibration.api",
    "CalibrationSet": "pomexport.calibration.capture",
    "CaptureSettings": "pomexport.calibration.capture",
    "capture": "pomexport.calibration.capture",
    "capture_model": "pomexport.calibration.capture",
    "METHODS": "pomexport.calibration.calibrators",
    "CalibrationReport": "pomexport.calibration.report",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
