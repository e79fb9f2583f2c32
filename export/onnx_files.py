"""Writing ONNX files into an artifact: atomically, with the weights in ``<name>.data`` when a
single protobuf would pass the 2 GiB limit. The artifact core (``export/artifact/``) reads
ONNX graphs but never imports onnx to write them; this is the export layer's writer.

The graph passes hand over an ``onnx_ir.Model``: it is serialised here, once, as it is saved.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

# Keep every single protobuf under the 2 GiB limit, with room for the graph itself.
EXTERNAL_DATA_THRESHOLD = (1 << 31) - (1 << 26)
_EXTERNAL_MIN_BYTES = 1024  # smaller tensors stay in the protobuf


def _initializer_bytes(model) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def _ir_initializer_bytes(model) -> int:
    """Bytes of the weights a serialised ``model`` would carry inline (not already external)."""
    import onnx_ir as ir

    tensors = [v.const_value for v in model.graph.initializers.values()]
    return sum(t.nbytes for t in tensors if t is not None and not isinstance(t, ir.ExternalTensor))


def _to_proto(model, folder: Path, data_name: str):
    """``model`` as a protobuf; an ``onnx_ir.Model`` over the limit first moves its weights
    to ``folder/data_name`` (its tensors then read that file: saving the same model again,
    the other flavor, shares it). Returns (proto, whether it needs external data)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model, _initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    import onnx_ir as ir

    if _ir_initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD:
        ir.external_data.unload_from_model(
            model, folder, data_name, size_threshold_bytes=_EXTERNAL_MIN_BYTES
        )
        return ir.to_proto(model), True
    return ir.to_proto(model), False


def save_onnx(model, path: str | os.PathLike) -> list[str]:
    """Write an ONNX model (``onnx_ir.Model`` or ``onnx.ModelProto``) atomically; weights go
    to ``<name>.data`` when over ~2 GB.

    Both files are written into a temporary folder beside ``path``, fsynced, then renamed
    into place (data first). Returns the names written (relative to ``path``'s folder).
    Saving externally moves the weights out of ``model``: saving the same model again (the
    other flavor) writes a graph that shares the first file's ``.data``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data_name = f"{path.name}.data"
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        proto, external = _to_proto(model, Path(tmp), data_name)
        written_ir = external and not isinstance(model, onnx.ModelProto)
        onnx.save_model(
            proto,
            str(Path(tmp) / path.name),
            save_as_external_data=external and not written_ir,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=_EXTERNAL_MIN_BYTES,
        )
        written = [data_name, path.name] if external else [path.name]
        for name in written:
            with open(Path(tmp) / name, "rb") as f:
                os.fsync(f.fileno())
            os.replace(Path(tmp) / name, path.parent / name)
    if written_ir:
        import onnx_ir as ir

        ir.external_data.set_base_dir(model.graph, path.parent)
    log.info("wrote %s%s", path, " (+ external data)" if external else "")
    return written
