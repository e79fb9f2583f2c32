"""The optional decoder stage of an artifact (issue 21; docs/design.md §6.2): its manifest
entry, the entry's schema and the decoder graphs checked against it. Torch- and onnx-free.

```
<out>/decoder/decode.onnx          kind "image" (AutoencoderKL, AutoencoderTiny)
<out>/decoder/first.onnx           kind "wan-stream" (AutoencoderKLWan): the first latent frame
<out>/decoder/next.onnx            every later one, with the causal-convolution caches
```

The manifest's ``decoder`` entry says what they are::

    {"class": "AutoencoderKLWan", "kind": "wan-stream", "precision": "fp16", "batch": 1,
     "files": {"first": "decoder/first.onnx", "next": "decoder/next.onnx"},
     "frames_per_step": {"first": 1, "next": 4},
     "io": {...}}   # export/decoder.py's IO contract: graphs, latent affine, rgb, state pairs

Its files are listed and hashed in ``files`` like every file (the loader refuses a decoder
file the table does not list, a listed one missing or changed); each graph's inputs and
outputs (names in order, dtypes, static dims) must be the entry's ``io``. An artifact without
the entry has no decoder and loads as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.layout import DECODER_DIR, MANIFEST

KEY = "decoder"  # the manifest entry
IMAGE, WAN_STREAM = "image", "wan-stream"
ROLES = {IMAGE: ("decode",), WAN_STREAM: ("first", "next")}
PRECISIONS = ("fp32", "fp16")
_ONNX_DTYPES = {"float32": 1, "float16": 10}


def decoder_file(role: str) -> str:
    """The artifact member of a decoder graph: ``decoder/<role>.onnx``."""
    return f"{DECODER_DIR}/{role}.onnx"


def decoder_entry(
    source_class: str, kind: str, precision: str, io: dict, frames_per_step: dict[str, int]
) -> dict:
    """The manifest's ``decoder`` entry (graphs at batch 1, files by role)."""
    return {
        "class": source_class,
        "kind": kind,
        "precision": precision,
        "batch": 1,
        "files": {role: decoder_file(role) for role in ROLES[kind]},
        "frames_per_step": {role: int(frames_per_step[role]) for role in ROLES[kind]},
        "io": io,
    }


@dataclass(frozen=True)
class DecoderSpec:
    """A verified artifact's decoder, as a runtime reads it.

    ``kind``: ``image`` (one graph, ``decode``: latent ``[1, C, h, w]`` -> rgb
    ``[1, 3, H, W]``) or ``wan-stream`` (``first`` then ``next``: latent ``[1, C, 1, h, w]``
    -> frames ``[1, 3, F, H, W]`` and the caches ``state_pairs`` name, inputs of ``next``
    paired with outputs of both).
    """

    source_class: str
    kind: str
    precision: str
    files: dict[str, str]
    frames_per_step: dict[str, int]
    io: dict

    @classmethod
    def from_manifest(cls, manifest: dict) -> DecoderSpec | None:
        entry = manifest.get(KEY)
        if entry is None:
            return None
        return cls(
            entry["class"],
            entry["kind"],
            entry["precision"],
            dict(entry["files"]),
            dict(entry["frames_per_step"]),
            entry["io"],
        )

    @property
    def streaming(self) -> bool:
        return self.kind == WAN_STREAM

    @property
    def state_pairs(self) -> list[tuple[str, str]]:
        """(input of ``next``, output of ``first``/``next``) per cache; none for ``image``."""
        return [tuple(p) for p in self.io.get("state", {}).get("pairs", [])]

    def graph(self, role: str) -> dict:
        """``{"inputs": [...], "outputs": [...]}`` of one role: name, shape, dtype."""
        return self.io["graphs"][role]

    def rgb_frames(self, latent_frames: int) -> int:
        """RGB frames decoded from ``latent_frames`` latent frames of one stream."""
        if not self.streaming:
            return latent_frames * self.frames_per_step["decode"]
        rest = max(0, latent_frames - 1) * self.frames_per_step["next"]
        return min(1, latent_frames) * self.frames_per_step["first"] + rest


def _fail(path: Path, what: str) -> ArtifactError:
    return ArtifactError(f"{path}: decoder {what}")


def _check_tensors(path: Path, role: str, graph: object) -> None:
    ok = isinstance(graph, dict) and all(
        isinstance(graph.get(k), list)
        and all(
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and isinstance(e.get("shape"), list)
            and all(type(d) is int and d >= 0 for d in e["shape"])
            and e.get("dtype") in _ONNX_DTYPES
            for e in graph[k]
        )
        for k in ("inputs", "outputs")
    )
    if not ok:
        what = "must list inputs and outputs (name, static shape, dtype)"
        raise _fail(path, f"io graph {role!r} {what}")


def check_decoder_entry(path: Path, manifest: dict) -> None:
    """ArtifactError (one line naming the field) unless the ``decoder`` entry, when there is
    one, has the types a runtime reads and every file it names is listed in ``files``."""
    entry = manifest.get(KEY)
    if entry is None:
        return
    if not isinstance(entry, dict) or not isinstance(entry.get("class"), str):
        raise _fail(path, "entry must be a table with a 'class'")
    kind = entry.get("kind")
    if kind not in ROLES:
        raise _fail(path, f"kind {kind!r} is not one of {', '.join(ROLES)}")
    if entry.get("precision") not in PRECISIONS or entry.get("batch") != 1:
        raise _fail(path, f"precision must be one of {PRECISIONS} and batch 1")
    roles = ROLES[kind]
    files, frames, io = entry.get("files"), entry.get("frames_per_step"), entry.get("io")
    if not isinstance(files, dict) or sorted(files) != sorted(roles):
        raise _fail(path, f"files must name the graphs {', '.join(roles)}")
    counts = frames.values() if isinstance(frames, dict) else ()
    if sorted(frames or ()) != sorted(roles) or not all(type(n) is int and n >= 1 for n in counts):
        raise _fail(path, f"frames_per_step must give {', '.join(roles)} a count >= 1")
    if not isinstance(io, dict) or not isinstance(io.get("graphs"), dict):
        raise _fail(path, "io must hold the graphs' inputs and outputs")
    for role in roles:
        name = files[role]
        if name != decoder_file(role):
            raise _fail(path, f"file of {role!r} must be {decoder_file(role)}, not {name!r}")
        if name not in manifest.get("files", {}):
            raise _fail(path, f"file {name} is not listed in {MANIFEST}'s files")
        _check_tensors(path, role, io["graphs"].get(role))


def decoder_role(manifest: dict, name: str) -> str | None:
    """The role of the listed file ``name`` in the decoder entry (None: not a decoder file)."""
    entry = manifest.get(KEY)
    if not isinstance(entry, dict):
        return None
    return next((role for role, f in entry["files"].items() if f == name), None)


def check_decoder_graph(name: str, model, manifest: dict, role: str) -> None:
    """A decoder graph's inputs and outputs: names in order, dtypes and static dims as the
    entry's ``io`` says (the runtime binds buffers of exactly those shapes)."""
    graph = manifest[KEY]["io"]["graphs"][role]
    for kind, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        want = graph[kind]
        names = [v.name for v in values]
        if names != [e["name"] for e in want]:
            raise ArtifactError(
                f"{name}: graph {kind} {names} differ from the decoder entry's "
                f"{[e['name'] for e in want]}"
            )
        for value, entry in zip(values, want, strict=True):
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            if tensor.elem_type != _ONNX_DTYPES[entry["dtype"]] or dims != entry["shape"]:
                raise ArtifactError(
                    f"{name}: {value.name} is not {entry['dtype']} {entry['shape']} as the "
                    f"decoder entry of {MANIFEST} says"
                )
