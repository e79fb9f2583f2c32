"""Writing ONNX files into an artifact: atomically, with the weights in ``<name>.data`` when a
single protobuf would pass the 2 GiB limit. The artifact core (``export/artifact/``) reads
ONNX graphs but never imports onnx to write them; this is the export layer's writer."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# Keep every single protobuf under the 2 GiB limit, with room for the graph itself.
EXTERNAL_DATA_THRESHOLD = (1 << 31) - (1 << 26)


def _initializer_bytes(model) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_onnx(model, path: str | os.PathLike) -> list[str]:
    """Write an ONNX model atomically; weights go to ``<name>.data`` when over ~2 GB.

    Both files are written into a temporary folder beside ``path``, fsynced, then renamed
    into place (data first). Returns the names written (relative to ``path``'s folder).
    Saving externally moves the weights out of ``model``: saving the same proto again (the
    other flavor) writes a graph that shares the first file's ``.data``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    external = _initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    data_name = f"{path.name}.data"
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        tmp_model = Path(tmp) / path.name
        onnx.save_model(
            model,
            str(tmp_model),
            save_as_external_data=external,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
        )
        written = [data_name, path.name] if external else [path.name]
        for name in written:
            with open(Path(tmp) / name, "rb") as f:
                os.fsync(f.fileno())
            os.replace(Path(tmp) / name, path.parent / name)
    log.info("wrote %s%s", path, " (+ external data)" if external else "")
    return written
