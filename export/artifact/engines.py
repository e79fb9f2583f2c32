"""The TensorRT engine cache of an artifact: engine names, cache keys, optimization profiles.

An engine is only valid for the ONNX file, the TensorRT version, the GPU (name and SM) and the
optimization profile it was built for. Its file is named after the target, like the C++
runtime names it (``runtime/cpp/src/engine.cpp::enginePlanName``), so both find each other's
engines::

    engines/<gpu>-sm<NN>-trt<major>.<minor>.<patch>.plan
    e.g. engines/nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan

and the manifest records, per engine, the :class:`EngineKey` it was built under (key
``"engines"``; device.json's table, for an engine built into a committed artifact:
``device.py``). A builder reuses a plan only when the recorded key equals the current one, so
re-exporting the ONNX or changing the batch range rebuilds, and nothing else does. A plan
without a record (the C++ runtime writes none) counts as stale and is rebuilt once.

Nothing here imports TensorRT: the key, the names and the profile shapes are plain data, tested
on any machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact.layout import ENGINES
from pomexport.export.artifact.load import Artifact

ENGINE_RECORDS = "engines"  # manifest key: {plan name: {"key": {...}, "digest": ..., ...}}
BATCH_DIM = "B"

# name -> (min, opt, max) shapes of one optimization profile
ProfileShapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


def gpu_slug(name: str) -> str:
    """A GPU name as a file-name part: lower case, every run of other characters one ``-``
    (``NVIDIA H100 80GB HBM3`` -> ``nvidia-h100-80gb-hbm3``), as the C++ runtime does."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        raise ArtifactError(f"GPU name {name!r} has no letters or digits to name an engine after")
    return slug


def trt_release(version: str) -> str:
    """``major.minor.patch`` of a TensorRT version string (``10.3.0.26`` -> ``10.3.0``)."""
    parts = version.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:3]):
        raise ArtifactError(f"unexpected TensorRT version string {version!r}")
    return ".".join((parts + ["0"])[:3])


def engine_name(gpu_name: str, sm: int, trt_version: str) -> str:
    """The artifact-relative plan name for one target: ``engines/<gpu>-sm<NN>-trt<ver>.plan``."""
    if sm < 10:
        raise ArtifactError(f"SM {sm} is not a compute capability (major * 10 + minor)")
    return f"{ENGINES}/{gpu_slug(gpu_name)}-sm{sm}-trt{trt_release(trt_version)}.plan"


def profile_shapes(artifact: Artifact) -> ProfileShapes:
    """(min, opt, max) shape of every input with a batch axis, from the artifact's I/O contract
    and its batch range: ``x_t`` [B, C_in, H, W], ``t``/``label``/``frame_index``/``count``
    [B], ``state`` [L, B, C] (the batch is its second axis). Inputs without a batch axis have
    static shapes and need no profile entry."""
    lo, opt, hi = artifact.batch
    shapes: ProfileShapes = {}
    for entry in artifact.inputs:
        dims = entry["shape"]
        if BATCH_DIM not in dims:
            continue
        unknown = [d for d in dims if d != BATCH_DIM and not isinstance(d, int)]
        if unknown:
            raise ArtifactError(
                f"{artifact.root}: input {entry['name']} has unresolved dims {unknown}; "
                "a profile needs every axis but the batch to be static"
            )

        def at(batch: int, dims=dims) -> tuple[int, ...]:
            return tuple(batch if d == BATCH_DIM else int(d) for d in dims)

        shapes[entry["name"]] = (at(lo), at(opt), at(hi))
    return shapes


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a plan is reused only under an equal key."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    sm: int
    profile: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]

    @classmethod
    def create(
        cls, onnx_sha256: str, trt_version: str, gpu_name: str, sm: int, shapes: ProfileShapes
    ) -> EngineKey:
        """The key of a build; ``shapes`` as :func:`profile_shapes` returns them."""
        profile = tuple((name, *shapes[name]) for name in sorted(shapes))
        return cls(onnx_sha256, trt_version, gpu_name, int(sm), profile)

    def to_dict(self) -> dict:
        """JSON form (lists for tuples), as recorded in the manifest."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        """sha256 of the canonical JSON of the key: equal keys, equal digests."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def plan_name(self) -> str:
        """Where this key's engine lives in the artifact."""
        return engine_name(self.gpu_name, self.sm, self.trt_version)


def cached_engine(artifact: Artifact, key: EngineKey) -> Path | None:
    """The artifact's plan for ``key`` when one is listed and was built under this very key
    (its hash was verified when the artifact was loaded); None when it must be (re)built."""
    name = key.plan_name
    record = artifact.manifest.get(ENGINE_RECORDS, {}).get(name)
    if name not in artifact.files or not isinstance(record, dict):
        return None
    if record.get("digest") != key.digest():
        return None
    return artifact.path(name)


def recorded_engines(manifest: dict) -> list[str]:
    """Plan names the manifest lists with an engine record (what a builder wrote), sorted.
    A plan without a record (the C++ runtime writes none) is not counted."""
    records = manifest.get(ENGINE_RECORDS)
    files = manifest.get("files")
    if not isinstance(records, dict) or not isinstance(files, dict):
        return []
    return sorted(n for n, r in records.items() if n in files and isinstance(r, dict))


def engine_record(key: EngineKey, flavor: str, built_utc: str) -> dict:
    """The record of the engine built under ``key`` from ``flavor`` (in the manifest's or
    device.json's ``engines`` table, under ``key.plan_name``)."""
    return {"key": key.to_dict(), "digest": key.digest(), "flavor": flavor, "built_utc": built_utc}


def with_engine_record(manifest: dict, key: EngineKey, flavor: str, built_utc: str) -> dict:
    """A copy of ``manifest`` recording the engine built under ``key`` from ``flavor``."""
    records = dict(manifest.get(ENGINE_RECORDS) or {})
    records[key.plan_name] = engine_record(key, flavor, built_utc)
    return {**manifest, ENGINE_RECORDS: records}
