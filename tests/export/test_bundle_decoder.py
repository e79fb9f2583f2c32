"""The decoder stage in deploy bundles (export/bundle.py, export/bundle_check.py; issue 21,
docs/design.md §6.2): shipped, listed and hashed in bundle.json like every member, loadable
from the extracted artifact; a bundle that lost a decoder graph is refused; bundles of
artifacts without a decoder keep the bytes they had before the decoder was bundled."""

from __future__ import annotations

import copy
import io
import json
import tarfile

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import load_artifact
from pomexport.export.bundle import BUNDLE_MANIFEST, package
from pomexport.export.bundle_check import verify_bundle

DECODER_GRAPHS = {"first": "artifact/decoder/first.onnx", "next": "artifact/decoder/next.onnx"}
# bundle.json's keys before the decoder was bundled, in the order they are written
LISTING_KEYS = [
    "format",
    "format_version",
    "target",
    "model",
    "artifact",
    "batch",
    "io",
    "op",
    "engine",
    "source",
    "files",
]


@pytest.fixture(scope="module")
def wan_bundle(decoders, tmp_path_factory):
    out = tmp_path_factory.mktemp("wan-bundle") / "wan.tar.gz"
    return package(decoders.artifact("wan").root, "x86-trt10", out).path


def _entries(path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def test_the_decoder_is_shipped_listed_and_hashed(decoders, wan_bundle, tmp_path):
    artifact = decoders.artifact("wan")
    report = verify_bundle(wan_bundle, extract=tmp_path / "m")
    assert report.listing["decoder"] == {
        "kind": "wan-stream",
        "precision": "fp32",
        "files": DECODER_GRAPHS,
    }
    for name in DECODER_GRAPHS.values():
        inner = name.removeprefix("artifact/")
        assert report.files[name]["sha256"] == artifact.files[inner]["sha256"]
    sums = (tmp_path / "m" / "SHA256SUMS").read_text()
    assert all(f"  {name}\n" in sums for name in DECODER_GRAPHS.values())
    loaded = load_artifact(tmp_path / "m" / "artifact")  # every hash and graph checked
    assert loaded.decoder == artifact.decoder
    assert set(loaded.files) == {
        "model.onnx",
        "model.plugin.onnx",
        "decoder/first.onnx",
        "decoder/next.onnx",
    }


def test_a_bundle_that_lost_a_decoder_graph_is_refused(wan_bundle, tmp_path):
    entries = []
    for info, data in _entries(wan_bundle):
        if info.name == DECODER_GRAPHS["next"]:
            continue
        if info.name == BUNDLE_MANIFEST:  # relisted without the graph, its decoder kept
            listing = json.loads(data)
            del listing["files"][DECODER_GRAPHS["next"]]
            data = json.dumps(listing).encode()
        entries.append((info, data))
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for info, data in entries:
            info = copy.copy(info)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ArtifactError, match=r"decoder graph 'next' .* is not listed") as err:
        verify_bundle(bad, extract=tmp_path / "out")
    assert len(str(err.value).splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_bundle_without_a_decoder_keeps_its_bytes(ort_artifact, tmp_path):
    """The listing and the reduced manifest are exactly what they were before (with the
    determinism of test_bundle.py, the same bytes): no ``decoder`` key, no decoder member."""
    artifact, _ = ort_artifact
    assert "decoder" not in artifact.manifest
    bundle = package(artifact.root, "x86-trt10", tmp_path / "b.tar.gz").path
    members = dict((info.name, data) for info, data in _entries(bundle))
    assert list(json.loads(members[BUNDLE_MANIFEST])) == LISTING_KEYS
    assert not any(name.startswith("artifact/decoder") for name in members)
    reduced = dict(artifact.manifest)
    reduced.pop("engines", None)
    shipped = ("model.onnx", "model.plugin.onnx")
    reduced["flavors"] = {f: n for f, n in reduced["flavors"].items() if n in shipped}
    reduced["files"] = {n: artifact.files[n] for n in shipped}
    assert members["artifact/manifest.json"] == (json.dumps(reduced, indent=2) + "\n").encode()
