"""An ONNX file of an artifact checked against its manifest when the artifact is loaded:
external data inside the directory, listed and in bounds; graph inputs and outputs (names in
order, dtypes, ranks) as ``io`` says; the model config as the graph's dims, initializers and
PolyMixer attributes say (``graph_check.py``). onnx is imported by the graph readers only.
"""

from __future__ import annotations

from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.contract import STEP_INPUTS, STEP_OUTPUTS
from pomexport.export.artifact.decoder import check_decoder_graph, decoder_role
from pomexport.export.artifact.graph_check import (
    check_initializers,
    check_io_dims,
    check_mixer_nodes,
)
from pomexport.export.artifact.layout import MANIFEST
from pomexport.export.artifact.manifest import io_contract
from pomexport.export.artifact.paths import external_data_refs, read_onnx_graph, safe_member
from pomexport.models.config import PoMDiTConfig

_ONNX_DTYPES = {"float32": 1, "float16": 10, "int64": 7}


def verify_onnx(root: Path, name: str, manifest: dict) -> None:
    """External data inside the directory, listed, in bounds; graph I/O as the manifest says
    (the step contract, or a decoder graph's entry in the manifest's ``decoder``)."""
    files = manifest["files"]
    model = read_onnx_graph(root / name)
    base = Path(name).parent.as_posix()
    for ref in external_data_refs(model):
        member = ref.location if base == "." else f"{base}/{ref.location}"
        path = safe_member(root, member, name)
        if member not in files:
            raise ArtifactError(
                f"{name}: external data {ref.location!r} is not listed in {MANIFEST}"
            )
        size = path.stat().st_size
        end = size if ref.length == -1 else ref.offset + ref.length
        if ref.offset < 0 or ref.length < -1 or end > size:
            raise ArtifactError(
                f"{name}: tensor {ref.tensor!r} reads bytes {ref.offset}..{end} of "
                f"{ref.location!r}, which has {size}"
            )
    role = decoder_role(manifest, name)
    if role is not None:  # a decoder graph: its own contract, in the manifest's decoder entry
        check_decoder_graph(name, model, manifest, role)
        return
    _check_graph_io(name, model, manifest)
    _check_config(name, model, manifest)


def _check_config(name: str, model, manifest: dict) -> None:
    """The manifest's model config (and the ``io`` shapes derived from it) against the graph's
    static dims, initializers and PolyMixer attributes: buffers are sized from the config, so
    it must describe the graph (``export/artifact/graph_check.py``)."""
    cfg = PoMDiTConfig.from_dict(manifest["model"]["config"])
    contract = io_contract(cfg, "float32")
    expected = {e["name"]: e["shape"] for entries in contract.values() for e in entries}
    for kind in ("inputs", "outputs"):
        for entry in manifest["io"][kind]:
            want = expected.get(entry["name"])
            if want is not None and entry["shape"] != want:
                raise ArtifactError(
                    f"{MANIFEST}: io {entry['name']} shape {entry['shape']} but its model "
                    f"config gives {want}; refusing a manifest that contradicts itself"
                )
    symbols = {spec.name: spec.shape for spec in STEP_INPUTS + STEP_OUTPUTS}
    check_io_dims(name, model, expected, symbols)
    check_initializers(name, model, cfg)
    check_mixer_nodes(name, model, cfg)


def _check_graph_io(name: str, model, manifest: dict) -> None:
    """Graph input/output names (in order), dtypes and ranks against the manifest's ``io``."""
    io = manifest.get("io")
    if io is None:
        return
    model_entry = manifest.get("model")
    config = model_entry.get("config") if isinstance(model_entry, dict) else None
    text = isinstance(config, dict) and bool(config.get("text_dim"))
    for kind, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        want = [e for e in io[kind] if not (text and e["name"] == "label")]
        names = [v.name for v in values if not (text and v.name == "text_emb")]
        if names != [e["name"] for e in want]:
            raise ArtifactError(
                f"{name}: graph {kind} {names} differ from {MANIFEST}'s {[e['name'] for e in want]}"
            )
        for value, entry in zip([v for v in values if v.name in names], want, strict=True):
            _check_value(name, value, entry)


def _check_value(name: str, value, entry: dict) -> None:
    """One graph input/output's dtype and rank against its ``io`` entry."""
    tensor = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(entry.get("dtype"))
    rank = len(entry["shape"]) if isinstance(entry.get("shape"), list) else None
    if dtype is not None and tensor.elem_type != dtype:
        raise ArtifactError(f"{name}: {value.name} is not {entry['dtype']} as {MANIFEST} says")
    if rank is not None and tensor.HasField("shape") and len(tensor.shape.dim) != rank:
        raise ArtifactError(f"{name}: {value.name} has rank {len(tensor.shape.dim)}, not {rank}")
