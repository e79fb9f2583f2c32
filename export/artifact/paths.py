"""Path safety and hashing for artifact directories (docs/design.md §6).

Every path an artifact names (manifest entries, ONNX external-data locations) must be a
plain relative path that stays inside the artifact directory after symlinks are resolved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
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


def read_plain_file(path: Path, limit: int, shown: str) -> bytes | None:
    """A small control file's bytes (manifest.sig, device.json, device.sig); None when absent.
    A symlink, another file type or more than ``limit`` bytes is refused, named ``shown``."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ArtifactError(f"{shown}: not a plain file")
    if not path.exists():
        return None
    if path.stat().st_size > limit:
        raise ArtifactError(f"{shown}: larger than {limit} bytes")
    return path.read_bytes()


def safe_member(root: Path, name: str, what: str) -> Path:
    """``root / name`` if ``name`` is relative, has no ``..`` and resolves inside ``root``.

    ``what`` names the file that carried ``name`` (for the error message).
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ArtifactError(f"{what}: refusing path {name!r} (empty, not text, or a NUL byte)")
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or Path(name).is_absolute() or ".." in pure.parts:
        raise ArtifactError(f"{what}: refusing path {name!r} (must stay inside {root})")
    candidate = root / pure
    try:
        resolved_root = root.resolve()
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as e:  # symlink loop, name too long
        raise ArtifactError(f"{what}: refusing path {name!r} ({e})") from e
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ArtifactError(f"{what}: {name!r} leaves the artifact directory (via a symlink)")
    return candidate


def read_onnx_graph(model_path: Path):
    """The ModelProto of an ONNX file without its external data (nothing else is read)."""
    import onnx

    try:
        return onnx.load(str(model_path), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError, OSError, ...: one clear line
        raise ArtifactError(f"{model_path.name}: not a readable ONNX file ({e})") from e


def read_onnx_bytes(name: str, data: bytes):
    """The ModelProto serialised in ``data`` (external data not resolved)."""
    import onnx

    try:
        return onnx.load_model_from_string(data)
    except Exception as e:  # DecodeError and friends: one clear line
        raise ArtifactError(f"{name}: not a readable ONNX file ({e})") from e


def external_data_locations(model_path: Path) -> set[str]:
    """Every external-data ``location`` named by an ONNX file (graph, subgraphs, functions)."""
    return {ref.location for ref in external_data_refs(read_onnx_graph(model_path))}


@dataclass(frozen=True)
class ExternalRef:
    """One tensor's external-data entry: file, byte offset and length (-1: to the end)."""

    tensor: str
    location: str
    offset: int
    length: int


def external_data_refs(model) -> list[ExternalRef]:
    """The external-data entries of every tensor of ``model`` (a ModelProto).

    Raises ArtifactError for an entry without a location or with a non-integer offset or
    length (what ``onnx`` would otherwise turn into an exception deep inside a load).
    """
    import onnx

    refs = []
    for tensor in _tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        if "location" not in entries:
            raise ArtifactError(f"tensor {tensor.name!r}: external data without a location")
        try:
            offset, length = int(entries.get("offset", 0)), int(entries.get("length", -1))
        except ValueError as e:
            raise ArtifactError(f"tensor {tensor.name!r}: bad external-data offset/length") from e
        refs.append(ExternalRef(tensor.name, entries["location"], offset, length))
    return refs


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
