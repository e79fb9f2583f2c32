"""A step graph in ONNX Runtime with its intermediates exposed: what the fp16 overflow check
(:mod:`pomexport.export.ranges`) and calibration's observation and accuracy runs read.

The graph stays an ``onnx_ir.Model``: :func:`with_outputs` makes a portable copy sharing its
weight tensors, :func:`cpu_session` saves it (weights external, so graphs over 2 GB load) and
opens a CPU session on the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx_ir as ir

from pomexport.export.flavors import add_function


def with_outputs(model: ir.Model, wanted: Callable[[ir.Value], bool]) -> ir.Model:
    """A portable copy of ``model`` (sharing its tensors) whose graph outputs also hold every
    node output ``wanted`` selects, in graph order; ``model`` is left as it is."""
    copy = add_function(model.clone())
    present = {v.name for v in copy.graph.outputs}
    for node in copy.graph:
        for value in node.outputs:
            if value.name not in present and wanted(value):
                copy.graph.outputs.append(value)
                present.add(value.name)
    return copy


def cpu_session(model: ir.Model, folder: Path, name: str, configure: Callable | None = None):
    """An ONNX Runtime CPU session on ``model`` saved as ``folder/<name>.onnx``;
    ``configure(options)`` adjusts its ``SessionOptions`` first."""
    import onnxruntime as ort

    path = folder / f"{name}.onnx"
    ir.save(model, path, external_data=f"{name}.onnx.data")
    options = ort.SessionOptions()
    if configure is not None:
        configure(options)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
