"""Path safety and hashing for artifact directories (DESIGN.md §6).

Every path an artifact names (manifest entries, ONNX external-data locations) must be a
plain relative path that stays inside the artifact directory after symlinks are resolved.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

from pomexport.errors import ArtifactError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (engines and weights can be GBs)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def safe_member(root: Path, name: str, what: str) -> Path:
    """``root / name`` if ``name`` is relative, has no ``..`` and resolves inside ``root``.

    ``what`` names the file that carried ``name`` (for the error message).
    """
    pure = PurePosixPath(name.replace("\\", "/"))
    if not name or pure.is_absolute() or Path(name).is_absolute() or ".." in pure.parts:
        raise ArtifactError(f"{what}: refusing path {name!r} (must stay inside {root})")
    candidate = root / pure
    resolved_root = root.resolve()
    resolved = candidate.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ArtifactError(f"{what}: {name!r} leaves the artifact directory (via a symlink)")
    return candidate


def external_data_locations(model_path: Path) -> set[str]:
    """Every external-data ``location`` named by an ONNX file (graph, subgraphs, functions)."""
    import onnx

    try:
        model = onnx.load(str(model_path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ...: one clear line
        raise ArtifactError(f"{model_path.name}: not a readable ONNX file ({e})") from e
    return {
        entry.value
        for tensor in _tensors(model)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }


def _tensors(model):
    """Initializers and tensor attributes of the graph, its subgraphs and local functions."""
    from onnx import AttributeProto

    def from_nodes(nodes):
        for node in nodes:
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == AttributeProto.TENSORS:
                    yield from attr.tensors
                elif attr.type == AttributeProto.GRAPH:
                    yield from from_graph(attr.g)
                elif attr.type == AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        yield from from_graph(g)

    def from_graph(graph):
        yield from graph.initializer
        yield from (s.values for s in graph.sparse_initializer)
        yield from from_nodes(graph.node)

    yield from from_graph(model.graph)
    for function in model.functions:
        yield from from_nodes(function.node)
