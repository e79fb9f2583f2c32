"""THE artifact directory of docs/design.md §6: the torch-, onnx- and ONNX Runtime-free core that
every component reads.

Its files are listed in ``layout.py``.

- ``layout.py``: the file names and the format's vocabulary (precisions, calibration methods);
- ``manifest.py``: the manifest's content (IO contract, tool versions), writing and reading;
- ``staging.py``: one writer per directory (lock), staged beside it and swapped in whole;
- ``edit.py``: THE write API, a draft committed with one manifest write;
- ``load.py``: :func:`load_artifact` verifies paths, listing, sizes, hashes and graphs before
  anything is used, and never writes;
- ``engines.py``, ``gates.py``, ``signing.py``, ``limits.py``, ``schema.py``, ``contract.py``:
  engine records, accuracy gates, signatures, bounds, the manifest schema, the op contract.

Writes are atomic (temp file + fsync + rename) and the manifest is written last, so a reader
never sees a manifest naming a half-written file. ONNX files are written by the export layer
(``pomexport.export.onnx_files.save_onnx``).
"""

from __future__ import annotations

from pomexport.export.artifact.edit import ArtifactDraft, edit_artifact, new_artifact
from pomexport.export.artifact.layout import (
    CALIBRATION_METHODS,
    ENGINES,
    FLAVOR_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MODEL_DTYPES,
    PLUGIN,
    PLUGINS,
    PORTABLE,
    PRECISIONS,
    TIMING_CACHE,
)
from pomexport.export.artifact.load import Artifact, load_artifact
from pomexport.export.artifact.manifest import (
    build_manifest,
    io_contract,
    read_manifest,
    tool_versions,
    write_manifest,
)
from pomexport.export.artifact.staging import artifact_lock, staged_artifact

__all__ = [
    "CALIBRATION_METHODS",
    "ENGINES",
    "FLAVOR_FILES",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MODEL_DTYPES",
    "PLUGIN",
    "PLUGINS",
    "PORTABLE",
    "PRECISIONS",
    "TIMING_CACHE",
    "Artifact",
    "ArtifactDraft",
    "artifact_lock",
    "build_manifest",
    "edit_artifact",
    "io_contract",
    "load_artifact",
    "new_artifact",
    "read_manifest",
    "staged_artifact",
    "tool_versions",
    "write_manifest",
]
