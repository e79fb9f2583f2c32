"""runtime/measure/bench_ort.py: the bench's artifact cache key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pomexport.runtime.measure import bench_ort


@pytest.mark.parametrize("source", ["export/flavors.py", "models/dit.py"])
def test_a_changed_exporter_or_model_source_changes_the_cache_key(source, monkeypatch):
    """A bench artifact traced from older model code must not be reused (the key once
    hashed export/ alone: a models/ change kept serving the stale graph)."""
    before = bench_ort._exporter_digest()
    read = Path.read_bytes

    def edited(path: Path) -> bytes:
        data = read(path)
        return data + b"\n# edited" if path.as_posix().endswith(source) else data

    monkeypatch.setattr(Path, "read_bytes", edited)
    assert bench_ort._exporter_digest() != before


@pytest.fixture
def keys_configured(tmp_path, monkeypatch):
    """A user's setup with trusted keys for their artifacts, and an empty bench cache."""
    from pomexport.export.artifact import signing

    _, public = signing.keygen(tmp_path / "user")
    monkeypatch.setenv(signing.ENV, str(public))
    monkeypatch.setenv(bench_ort.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_bench_cache_loads_when_trusted_keys_are_configured(keys_configured, precision):
    """The bench's own cache entries are unsigned: keys configured for the user's artifacts
    refused every ONNX Runtime bench row (fp32: exported; int8: calibrated in the cache too)
    with 'unsigned, and 1 trusted key(s) are configured'."""
    from pomexport.errors import ArtifactError
    from pomexport.export.artifact import load_artifact
    from pomexport.models.registry import random_model
    from pomexport.runtime.measure.roofline import artifact_graph

    model = random_model("tiny")
    graph = artifact_graph(model, precision)
    assert graph.startswith(b"\x08")  # a serialized ModelProto (ir_version first)
    (entry,) = [p for p in keys_configured.iterdir() if p.name.endswith(precision)]
    with pytest.raises(ArtifactError, match="unsigned, and 1 trusted key"):
        load_artifact(entry)  # a user's load of the same folder still enforces the keys


@pytest.mark.parametrize("loose", ["cache", "entry"])
def test_a_cache_others_can_write_is_refused_before_any_load(tmp_path, loose):
    """The cache is loaded unsigned on the bench's word that it wrote it: a folder that other
    users can write (the default lives in the shared temporary directory) voids that."""
    import os

    from pomexport.errors import ArtifactError

    entry = tmp_path / "cache" / "key-fp32"
    entry.mkdir(parents=True, mode=0o755)
    os.chmod(entry.parent, 0o755)
    with pytest.raises(ArtifactError, match="manifest"):  # private: on to the load itself
        bench_ort.load_cached(entry)
    os.chmod(entry if loose == "entry" else entry.parent, 0o777)
    with pytest.raises(ArtifactError, match="writable by you only.*POMEXPORT_BENCH_CACHE"):
        bench_ort.load_cached(entry)
