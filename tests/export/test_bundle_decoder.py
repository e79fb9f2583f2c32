"""The decoder stage in deploy bundles (export/bundle.py, export/bundle_check.py; issue 21,
docs/design.md §6.2): shipped, listed and hashed in bundle.json like every member, loadable
from the extracted artifact; a bundle that lost a decoder graph is refused; bundles of
artifacts without a decoder keep the bytes they had before the decoder was bundled. The
bundle's build.sh builds one engine per decoder graph with trtexec and records it in
device.json."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
import tarfile

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import load_artifact
from pomexport.export.artifact.engines import EngineKey
from pomexport.export.bundle import BUILD_SCRIPT, BUNDLE_MANIFEST, package
from pomexport.export.bundle_check import verify_bundle
from pomexport.runtime.trt_decoder import find_decoder_engines

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


# -- build.sh: the decoder engines, built on the device (docs/design.md §6.1, §6.2) ------------
def _decoder_lines(script: str) -> list[str]:
    """The trtexec command of build.sh's build_decoder_engines (continuations joined)."""
    body = re.search(r"^build_decoder_engines\(\) \{$(.*?)^\}$", script, re.S | re.M).group(1)
    return [line for line in body.replace("\\\n", " ").splitlines() if "--onnx" in line]


def test_build_script_builds_one_engine_per_decoder_graph(wan_bundle, ort_artifact, tmp_path):
    """build.sh of a decoder bundle names the graphs and builds each with trtexec, strongly
    typed with TF32 off like the step's, static shapes (no profile, no plugin), the step's
    workspace cap, no inference; after the step engine, before the registration, skipped with
    SKIP_ENGINE=1. (trtexec itself needs TensorRT and a GPU: not run here.)"""
    root = tmp_path / "m"
    verify_bundle(wan_bundle, extract=root)
    script = (root / BUILD_SCRIPT).read_text()
    assert 'DECODER_ONNX="decoder/first.onnx decoder/next.onnx"' in script.splitlines()
    done = subprocess.run(
        ["bash", "-c", f"source ./{BUILD_SCRIPT}; printf '%s' \"$DECODER_ONNX\""],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.stdout.split() == [
        DECODER_GRAPHS[r].removeprefix("artifact/") for r in DECODER_GRAPHS
    ]
    for graph in done.stdout.split():
        assert (root / "artifact" / graph).is_file()
    [line] = _decoder_lines(script)
    args = line.split()
    assert {"--stronglyTyped", "--noTF32", "--skipInference", '"${cap[@]}"'} <= set(args)
    assert '--onnx="artifact/${onnx}"' in args
    assert not any(a.startswith(("--minShapes", "--fp16", "--dynamicPlugins")) for a in args)
    main = re.search(r"^main\(\) \{$(.*?)^\}$", script, re.S | re.M).group(1)
    skip, rest = main.split("build_engine\n", 1)
    assert "build_decoder_engines" not in skip  # SKIP_ENGINE=1 returns before both
    assert rest.index("build_decoder_engines") < rest.index("register 1")
    assert shutil.which("shellcheck"), "shellcheck not installed (apt-get install shellcheck)"
    checked = subprocess.run(["shellcheck", str(root / BUILD_SCRIPT)], capture_output=True)
    assert checked.returncode == 0, checked.stdout
    plain = package(ort_artifact[0].root, "x86-trt10", tmp_path / "plain.tar.gz").path
    verify_bundle(plain, extract=tmp_path / "p")
    assert 'DECODER_ONNX=""' in (tmp_path / "p" / BUILD_SCRIPT).read_text().splitlines()


def _steps(root, *steps: str) -> subprocess.CompletedProcess:
    script = f"source ./{BUILD_SCRIPT}; " + "; ".join(steps)
    return subprocess.run(["bash", "-c", script], cwd=root, capture_output=True, text=True)


def test_build_script_records_the_decoder_engines_in_device_json(wan_bundle, tmp_path):
    """What trtexec leaves in build/ (no TensorRT here: its outputs are stand-ins), registered:
    named from the step build's log like the step plan, listed and hashed in device.json with
    their keys (the records tests/runtime/test_cpp_runtime.py gives the C++ chooser),
    manifest.json untouched; the Python chooser picks them for that target."""
    root = tmp_path / "m"
    verify_bundle(wan_bundle, extract=root)
    shipped = (root / "artifact/manifest.json").read_bytes()
    (root / "build/plugin").mkdir(parents=True)
    (root / "build/plugin/libpomexport_plugins.so").write_bytes(b"\x7fELF plugin")
    (root / "build/model.plan").write_bytes(b"plan bytes")
    for role in ("first", "next"):
        (root / f"build/decoder-{role}.plan").write_bytes(f"decoder {role}".encode())
    (root / "build/trtexec.log").write_text(
        "[I] Selected Device: Orin\n[I] Compute Capability: 8.7\n[I] TensorRT version: 10.3.0\n"
    )
    done = _steps(root, "register 0")  # SKIP_ENGINE=1: the plugin only
    assert done.returncode == 0, done.stderr
    assert not find_decoder_engines(load_artifact(root / "artifact"), "10.3.0", "Orin", 87).plans
    done = _steps(root, "register 1")
    assert done.returncode == 0, done.stderr
    assert (root / "artifact/manifest.json").read_bytes() == shipped
    artifact = load_artifact(root / "artifact")  # every hash checked
    assert [p.name for p in artifact.engines] == ["orin-sm87-trt10.3.0.plan"]
    found = find_decoder_engines(artifact, "10.3.0.26", "Orin", 87)
    assert found.complete and found.plans == {
        "first": "decoder/first-orin-sm87-trt10.3.0.plan",
        "next": "decoder/next-orin-sm87-trt10.3.0.plan",
    }
    for role, plan in found.plans.items():
        assert artifact.read_verified(plan) == f"decoder {role}".encode()
        record = artifact.manifest["decoder"]["engines"][plan]
        graph = artifact.files[f"decoder/{role}.onnx"]["sha256"]
        key = EngineKey.create(graph, "10.3.0", "Orin", 87, {})
        assert record["key"] == key.to_dict() and record["digest"] == key.digest()
    assert _steps(root, "verify_files").returncode == 0  # a rebuild: the artifact as shipped
    assert "decoder/first-orin-sm87-trt10.3.0.plan" not in load_artifact(root / "artifact").files
