"""torch -> ONNX: the PoM-DiT step graph, the PolyMixer op (schema + function), precision
passes, and the artifact directory every other component reads (docs/design.md §2-§4, §6).

The artifact API is imported eagerly (it is light); the exporter lazily, so runtime code
that only loads artifacts never imports onnxscript or the torch exporter.
"""

from __future__ import annotations

from pomexport.export.artifact import (
    MANIFEST,
    PLUGIN,
    PORTABLE,
    Artifact,
    build_manifest,
    load_artifact,
    write_manifest,
)
from pomexport.lazy import lazy_exports

_LAZY = {
    "export_model": "pomexport.export.api",
    "ExportOptions": "pomexport.export.api",
    "polymixer_function": "pomexport.export.function",
    "register_schema": "pomexport.export.schema",
    "save_onnx": "pomexport.export.onnx_files",
}

__all__ = [
    "MANIFEST",
    "PLUGIN",
    "PORTABLE",
    "Artifact",
    "ExportOptions",
    "build_manifest",
    "export_model",
    "load_artifact",
    "polymixer_function",
    "register_schema",
    "save_onnx",
    "write_manifest",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
