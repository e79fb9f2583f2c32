"""The runtime only loads and runs: loading an artifact and generating from it never writes
to it (issue 19)."""

from __future__ import annotations

import os
import shutil

import pytest

from pomexport.export.artifact import load_artifact
from pomexport.runtime import generate
from pomexport.runtime.ort_backend import OrtBackend


def _snapshot(folder) -> dict[str, tuple[int, int]]:
    """Every entry under ``folder`` (and beside it): name -> (size, mtime in ns)."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(folder.parent):
        for name in dirnames + filenames:
            info = os.lstat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), folder.parent)
            entries[rel] = (info.st_size, info.st_mtime_ns)
    return entries


def test_loading_and_generating_never_write_to_the_artifact(ort_artifact, tmp_path):
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "copy" / "artifact")
    before = _snapshot(root)
    artifact = load_artifact(root)
    clip = generate(OrtBackend(artifact, backend="ort"), [1], frames=2, steps=2, seed=0)
    assert clip.shape[1] == 2
    assert _snapshot(root) == before


def test_onnx_runtime_tensorrt_engines_are_cached_outside_the_artifact(
    ort_artifact, tmp_path, monkeypatch
):
    from pomexport.runtime.ort_backend import CACHE_ENV, default_trt_cache

    artifact = ort_artifact[0]
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    cache = default_trt_cache(artifact, artifact.onnx_path("portable"))
    assert tmp_path in cache.parents and artifact.root not in cache.parents
    assert cache.name == artifact.files["model.onnx"]["sha256"][:16]


def test_the_tensorrt_backend_builds_no_engine_unless_asked(ort_artifact, monkeypatch):
    """TrtBackend(source) runs the engine the manifest records; the builder runs only with
    build_engine=True (no TensorRT needed: the lookup and the build are stubbed)."""
    from pomexport.errors import ArtifactError
    from pomexport.export.engine.builder import EngineFromOnnx
    from pomexport.runtime import trt_backend

    built = []
    monkeypatch.setattr(EngineFromOnnx, "cached", lambda self: None)
    monkeypatch.setattr(EngineFromOnnx, "__call__", lambda self: built.append(self) or "built")
    with pytest.raises(ArtifactError, match="build it with `pomexport build --backend trt`"):
        trt_backend._engine(ort_artifact[0], 0, build_engine=False)
    assert built == []
    assert trt_backend._engine(ort_artifact[0], 0, build_engine=True) == "built"
    assert len(built) == 1
