"""pomexport: export and deploy PoM-DiT (Polynomial Mixer diffusion transformers).

Components (docs/design.md §5): ``pomexport.models`` (PyTorch reference), ``pomexport.export``
(ONNX), ``pomexport.runtime`` (stepwise generation), ``pomexport.calibration`` (INT8),
``pomexport.cli`` (the ``pomexport`` command).
"""

from pomexport.errors import (
    ArtifactError,
    BuildError,
    ConfigError,
    ExportError,
    PluginError,
    PomExportError,
    StateError,
)

__version__ = "0.1.0"

__all__ = [
    "ArtifactError",
    "BuildError",
    "ConfigError",
    "ExportError",
    "PluginError",
    "PomExportError",
    "StateError",
    "__version__",
]
