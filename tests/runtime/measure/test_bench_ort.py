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
