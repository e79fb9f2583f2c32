"""The typed error hierarchy: every user-facing failure is a PomExportError."""


class PomExportError(Exception):
    """Base of every error pomexport raises on purpose (the CLI prints it as one line)."""


class ExportError(PomExportError):
    """Tracing or writing an ONNX graph failed."""


class BuildError(PomExportError):
    """Building an engine or an artifact failed."""


class PluginError(PomExportError):
    """The PolyMixer plugin library is missing, unverified or failed."""


class ArtifactError(PomExportError):
    """An artifact, bundle or weights file is missing, corrupt or unsafe."""


class StateError(PomExportError):
    """A stream's state or its inputs are inconsistent (bad slot, frame, shape)."""


class ConfigError(PomExportError):
    """A model name, preset or option value is not known or out of range."""
