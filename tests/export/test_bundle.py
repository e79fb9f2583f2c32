"""Deploy bundles (export/bundle.py, export/bundle_check.py) from one real exported artifact:
a bundle verifies, extracts into an artifact both loaders accept, is byte-deterministic, and
every tampered or unsafe variant (issue 10's tar cases) is refused naming its member, with
nothing written anywhere."""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact import load_artifact
from pomexport.export.bundle import BUILD_SCRIPT, BUNDLE_MANIFEST, SOURCES, package
from pomexport.export.bundle_check import unsafe_name, verify_bundle
from pomexport.export.targets import TARGETS, get_target

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bundle(ort_artifact, tmp_path_factory) -> Path:
    artifact, _ = ort_artifact
    out = tmp_path_factory.mktemp("bundle") / "m.tar.gz"
    package(artifact.root, "jetson-orin-jp6", out)
    return out


@pytest.fixture(scope="module")
def extracted(bundle, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("extracted") / "m"
    verify_bundle(bundle, extract=dest)
    return dest


@pytest.fixture(scope="module")
def entries(bundle) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The good bundle's members and contents (read once; cases rewrite copies)."""
    with tarfile.open(bundle, "r:gz") as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _write(path: Path, entries: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz", compresslevel=0) as tar:
        for info, data in entries:
            info = copy.copy(info)
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info


def test_bundle_verifies_and_extracts(ort_artifact, bundle, extracted):
    artifact, _ = ort_artifact
    report = verify_bundle(bundle)
    listing = json.loads((extracted / BUNDLE_MANIFEST).read_text())
    assert report.listing == listing
    assert (
        listing["io"] == artifact.manifest["io"] and listing["batch"] == artifact.manifest["batch"]
    )
    assert listing["target"]["tensorrt"] == "10.3" and listing["target"]["cuda"] == "12.6"
    assert listing["target"]["sm"] == [87]
    for name in ("build.sh", "README.md", "SHA256SUMS", "src/plugin/CMakeLists.txt"):
        assert name in listing["files"]
    assert "src/cpp/include/pomrt.h" in listing["files"]
    inner = load_artifact(extracted / "artifact")  # hash-verified by the artifact loader
    assert inner.flavors == ("portable", "plugin") and set(inner.files) == {
        "model.onnx",
        "model.plugin.onnx",
    }
    for name in inner.files:
        assert (extracted / "artifact" / name).read_bytes() == artifact.path(name).read_bytes()
    assert (extracted / BUILD_SCRIPT).stat().st_mode & 0o111
    assert not any(p.name.startswith(".") for p in extracted.rglob("*"))  # no staging left


def test_trtexec_profile_from_manifest(ort_artifact, extracted):
    artifact, _ = ort_artifact
    lo, opt, hi = artifact.batch
    cfg = artifact.config
    line = json.loads((extracted / BUNDLE_MANIFEST).read_text())["engine"]["trtexec"]
    state = f"state:{cfg.depth}x{hi}x{cfg.state_width}"
    assert f"x_t:{hi}x{cfg.in_channels}x{cfg.input_size}x{cfg.input_size}" in line
    assert state in line and f"--minShapes=x_t:{lo}x" in line and f"--optShapes=x_t:{opt}x" in line
    assert "--stronglyTyped" in line and "--dynamicPlugins=" in line and "--noTF32" in line
    assert "--memPoolSize=workspace:1024" in line  # the Orin Nano cap
    assert "--onnx=artifact/model.plugin.onnx" in line


def test_bundle_bytes_are_deterministic(ort_artifact, bundle, tmp_path):
    artifact, _ = ort_artifact
    again = package(artifact.root, "jetson-orin-jp6", tmp_path / "other-name.tar.gz")
    assert again.path.read_bytes() == bundle.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["other-name.tar.gz"]  # no temp file left
    with tarfile.open(bundle, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (946684800, 0, 0, "", "")
    }


def test_jp7_target(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    out = package(artifact.root, "jetson-jp7", tmp_path / "jp7.tar.gz", workspace_mib=0)
    listing = verify_bundle(out.path).listing
    assert listing["target"]["tensorrt"] == "11.4.1" and listing["target"]["sm"] == [87, 110]
    assert "--memPoolSize" not in listing["engine"]["trtexec"]  # 0: no cap
    assert get_target("x86-trt11").cuda_architectures.endswith("100;120")
    assert set(TARGETS) == {"jetson-orin-jp6", "jetson-jp7", "x86-trt10", "x86-trt11"}


def _flip_byte(entries):
    return [
        (i, bytes([d[0] ^ 1]) + d[1:]) if i.name == "artifact/model.onnx" else (i, d)
        for i, d in entries
    ]


def _relist(entries, name):
    """Also list ``name`` in bundle.json (so only the member's type can refuse it)."""
    out = []
    for info, data in entries:
        if info.name == BUNDLE_MANIFEST:
            listing = json.loads(data)
            listing["files"][name] = {"sha256": "0" * 64, "bytes": 0}
            data = json.dumps(listing).encode()
        out.append((info, data))
    return out


CASES = {
    "flipped byte": ("artifact/model.onnx", "sha256 mismatch", _flip_byte),
    "extra file": ("extra.txt", "not listed", lambda e: e + [(_member("extra.txt"), b"x")]),
    "missing file": (
        "src/cpp/README.md",
        "missing from the archive",
        lambda e: [(i, d) for i, d in e if i.name != "src/cpp/README.md"],
    ),
    "dotdot": ("../evil.txt", "'..'", lambda e: e + [(_member("../evil.txt"), b"x")]),
    "inner dotdot": (
        "artifact/../../evil.txt",
        "'..'",
        lambda e: e + [(_member("artifact/../../evil.txt"), b"x")],
    ),
    "absolute": (
        "/tmp/pomexport-evil.txt",
        "absolute",
        lambda e: e + [(_member("/tmp/pomexport-evil.txt"), b"x")],
    ),
    "symlink out": (
        "artifact/link",
        "symlink",
        lambda e: (
            _relist(e, "artifact/link")
            + [(_member("artifact/link", tarfile.SYMTYPE, "../../outside.txt"), b"")]
        ),
    ),
    "hard link out": (
        "artifact/hard",
        "hard link",
        lambda e: (
            _relist(e, "artifact/hard")
            + [(_member("artifact/hard", tarfile.LNKTYPE, "../../outside.txt"), b"")]
        ),
    ),
    "device node": (
        "dev/null",
        "device node",
        lambda e: e + [(_member("dev/null", tarfile.CHRTYPE), b"")],
    ),
    "fifo": ("pipe", "FIFO", lambda e: e + [(_member("pipe", tarfile.FIFOTYPE), b"")]),
    "duplicate": ("README.md", "twice", lambda e: e + [(_member("README.md"), b"x")]),
    "unsafe listing": ("../x", "entry '../x' refused", lambda e: _relist(e, "../x")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_bundle_refused_nothing_written(entries, tmp_path, case):
    member, reason, edit = CASES[case]
    bad = _write(tmp_path / "bad.tar.gz", edit(list(entries)))
    dest = tmp_path / "out" / "m"
    with pytest.raises(ArtifactError, match=reason) as err:
        verify_bundle(bad, extract=dest)
    assert repr(member) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]  # not even dest
    assert not (tmp_path.parent / "outside.txt").exists()
    assert not Path("/tmp/pomexport-evil.txt").exists()


def test_corrupt_archive_refused(bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="bad.tar.gz"):
        verify_bundle(bad, extract=tmp_path / "out")
    truncated = tmp_path / "short.tar.gz"
    truncated.write_bytes(bytes(data[:1000]))
    with pytest.raises(ArtifactError, match="not a readable tar.gz"):
        verify_bundle(truncated)
    assert not (tmp_path / "out").exists()


def test_extract_into_non_empty_dir_refused(bundle, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not an empty directory"):
        verify_bundle(bundle, extract=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_unsafe_names():
    for name in ("a/b.txt", "src/cpp/CMakeLists.txt", "dir/"):
        assert unsafe_name(name) is None, name
    for name in ("", "/abs", "../x", "a/../../x", "a\\b", "C:x", "./a", "a//b", "a/./b"):
        assert unsafe_name(name) is not None, name


def test_build_script_is_valid_shell(extracted):
    script = extracted / BUILD_SCRIPT
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # scripts/test.sh installs it (apt-get install shellcheck): missing, it is a failure
    assert shutil.which("shellcheck"), "shellcheck not installed (apt-get install shellcheck)"
    done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _steps(root: Path, *steps: str) -> subprocess.CompletedProcess:
    """Source build.sh (defines its steps without running them) and run ``steps``."""
    script = f"source ./{BUILD_SCRIPT}; " + "; ".join(steps)
    return subprocess.run(["bash", "-c", script], cwd=root, capture_output=True, text=True)


def _device_build_outputs(root: Path) -> None:
    """What the compile and trtexec steps leave in build/ (no compiler or TensorRT here)."""
    (root / "build/plugin").mkdir(parents=True)
    (root / "build/plugin/libpomexport_plugins.so").write_bytes(b"\x7fELF plugin")
    (root / "build/model.plan").write_bytes(b"plan bytes")
    (root / "build/trtexec.log").write_text(
        "[I] Selected Device: Orin\n[I] Compute Capability: 8.7\n[I] TensorRT version: 10.3.0\n"
    )


def test_build_script_verifies_and_registers(extracted, tmp_path):
    """The device-side steps that need no compiler: the sha256 check, the registration of
    the plugin and the engine in device.json with manifest.json untouched (the artifact loader
    accepts the result), the reset on a rebuild, and a tampered file stopping the build."""
    root = tmp_path / "m"
    shutil.copytree(extracted, root)
    shipped = (root / "artifact/manifest.json").read_bytes()
    assert _steps(root, "verify_files").returncode == 0
    _device_build_outputs(root)
    done = _steps(root, "register 1")
    assert done.returncode == 0, done.stderr
    assert (root / "artifact/manifest.json").read_bytes() == shipped  # never rewritten
    record = json.loads((root / "artifact/device.json").read_text())
    assert record["manifest_sha256"] == hashlib.sha256(shipped).hexdigest()
    art = load_artifact(root / "artifact")
    assert [p.name for p in art.engines] == ["orin-sm87-trt10.3.0.plan"]
    assert art.plugin_library[0].read_bytes() == b"\x7fELF plugin"
    assert _steps(root, "verify_files").returncode == 0  # rebuild: the artifact as shipped again
    assert set(load_artifact(root / "artifact").files) == {"model.onnx", "model.plugin.onnx"}
    assert not (root / "artifact/device.json").exists()
    with open(root / "src/cpp/README.md", "a") as f:
        f.write("tampered\n")
    done = _steps(root, "verify_files")
    assert done.returncode != 0 and "src/cpp/README.md: FAILED" in done.stdout + done.stderr


def test_build_script_checks_the_plugin_loads_before_the_engine(extracted, tmp_path):
    """trtexec ignores a failed --dynamicPlugins load, so build.sh loads the library through
    pomrt's check_plugin first and stops with its reason; main() runs it between the runtime
    build (which compiles check_plugin) and the engine build."""
    root = tmp_path / "m"
    shutil.copytree(extracted, root)
    library = root / "build/plugin/libpomexport_plugins.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"\x7fELF plugin")
    tool = root / "build/pomrt/check_plugin"
    tool.parent.mkdir(parents=True)
    # In place of the compiled tool (tests/runtime/test_cpp_runtime.py runs the real one):
    # records its arguments and refuses, as it does when TensorRT cannot load the library.
    tool.write_text('#!/bin/sh\necho "$@" > build/args\necho "check_plugin: refused" >&2\nexit 1\n')
    tool.chmod(0o755)
    done = _steps(root, "check_plugin")
    assert (
        done.returncode != 0 and "refused" in done.stderr and "TensorRT cannot load" in done.stderr
    )
    sha = hashlib.sha256(b"\x7fELF plugin").hexdigest()
    assert (root / "build/args").read_text().split() == [str(library.relative_to(root)), sha]
    tool.write_text("#!/bin/sh\nexit 0\n")
    assert _steps(root, "check_plugin").returncode == 0
    script = (root / BUILD_SCRIPT).read_text()
    main = re.search(r"^main\(\) \{$(.*?)^\}$", script, re.S | re.M).group(1)
    assert main.index("build_runtime") < main.index("check_plugin") < main.index("build_engine")


def test_package_refuses_bad_input(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    with pytest.raises(ConfigError, match="unknown target 'orin'"):
        package(artifact.root, "orin", tmp_path / "b.tar.gz")
    with pytest.raises(ArtifactError, match="not an artifact directory"):
        package(tmp_path / "nope", "jetson-orin-jp6", tmp_path / "b.tar.gz")
    with pytest.raises(ArtifactError, match="is a directory"):
        package(artifact.root, "jetson-orin-jp6", tmp_path)
    portable_only = tmp_path / "portable"
    shutil.copytree(artifact.root, portable_only)
    manifest = json.loads((portable_only / "manifest.json").read_text())
    del manifest["flavors"]["plugin"]
    (portable_only / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="no plugin flavor"):
        package(portable_only, "jetson-orin-jp6", tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()


def test_package_data_ships_every_bundled_source():
    """A non-editable install has exactly the package-data files: every source the bundle
    takes from runtime/ must match a pyproject pattern."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the test extra brings tomli to Python 3.10
        import tomli as tomllib
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["pomexport.runtime"]
    runtime = REPO / "runtime"
    for root in SOURCES.values():
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(runtime).as_posix()
                assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel


def test_only_tensorrt_flavors_are_shipped(ort_artifact, tmp_path):
    """An int8 artifact's ort-cpu flavor, engines and other files stay out of the bundle; the
    bundled manifest lists exactly what is shipped (the C++ runtime refuses unlisted files)."""
    from pomexport.export.artifact import write_manifest

    artifact, _ = ort_artifact
    root = tmp_path / "art"
    shutil.copytree(artifact.root, root)
    shutil.copy(root / "model.onnx", root / "model.ort-cpu.onnx")
    (root / "engines").mkdir()
    (root / "engines" / "gpu-sm90-trt10.3.0.plan").write_bytes(b"plan")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["flavors"]["ort-cpu"] = "model.ort-cpu.onnx"
    write_manifest(root, manifest)
    out = package(root, "x86-trt10", tmp_path / "b.tar.gz")
    names = set(verify_bundle(out.path).files)
    assert {n for n in names if n.startswith("artifact/")} == {
        "artifact/manifest.json",
        "artifact/model.onnx",
        "artifact/model.plugin.onnx",
    }
    with tarfile.open(out.path, "r:gz") as tar:
        inner = json.loads(tar.extractfile("artifact/manifest.json").read())
    assert inner["flavors"] == {"portable": "model.onnx", "plugin": "model.plugin.onnx"}
    assert set(inner["files"]) == {"model.onnx", "model.plugin.onnx"}


def test_build_script_checks_the_signature(ort_artifact, extracted, tmp_path, monkeypatch):
    """build.sh with POMEXPORT_TRUSTED_KEYS (issue 22): a bundle signed by the key passes,
    an unsigned one, another key's and an edited bundle.json stop before any compile."""
    from pomexport.export.artifact.signing import keygen, load_public_key

    key, public = keygen(tmp_path / "ops")
    other = keygen(tmp_path / "other")[1]
    signed = tmp_path / "signed.tar.gz"
    package(ort_artifact[0].root, "jetson-orin-jp6", signed, sign_key=key)
    root = tmp_path / "m"
    verify_bundle(signed, extract=root, trusted=[load_public_key(public)])
    unsigned = Path(shutil.copytree(extracted, tmp_path / "u"))
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", str(public))
    assert _steps(root, "verify_files").returncode == 0
    done = _steps(unsigned, "verify_files")
    assert done.returncode != 0 and "bundle.json: unsigned" in done.stderr
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", f"{other}:{tmp_path / 'missing.pub'}")
    done = _steps(root, "verify_files")
    assert done.returncode != 0 and "not signed by a trusted key" in done.stderr
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", str(public))
    listing = root / "bundle.json"
    listing.write_text(listing.read_text().replace("jetson-orin-jp6", "x86-trt10"))
    done = _steps(root, "verify_files")
    assert done.returncode != 0 and "not signed by a trusted key" in done.stderr


def test_build_script_keeps_a_signed_manifest_signed(ort_artifact, tmp_path, monkeypatch):
    """Issue 22: the device build records its plugin library and engine in device.json, signed
    with POMEXPORT_DEVICE_KEY; the shipped manifest.json keeps its signature. With the packager's
    and the device's keys trusted, the Python loader accepts the result; an unsigned or
    foreign-signed device.json, or a device key that is not trusted, is refused in one line."""
    from pomexport.export.artifact.signing import keygen, load_public_key

    ops_key, ops_pub = keygen(tmp_path / "ops")
    dev_key, dev_pub = keygen(tmp_path / "device")
    other_key = keygen(tmp_path / "other")[0]
    signed = tmp_path / "signed.tar.gz"
    package(ort_artifact[0].root, "jetson-orin-jp6", signed, sign_key=ops_key)
    root = tmp_path / "m"
    verify_bundle(signed, extract=root, trusted=[load_public_key(ops_pub)])
    art = root / "artifact"
    shipped = (art / "manifest.json").read_bytes(), (art / "manifest.sig").read_bytes()
    trusted = [load_public_key(ops_pub), load_public_key(dev_pub)]
    _device_build_outputs(root)

    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", f"{ops_pub}:{dev_pub}")
    monkeypatch.delenv("POMEXPORT_DEVICE_KEY", raising=False)
    done = _steps(root, "verify_files", "check_device_key")
    assert done.returncode != 0 and "POMEXPORT_DEVICE_KEY is not" in done.stderr
    monkeypatch.setenv("POMEXPORT_DEVICE_KEY", str(dev_key))
    done = _steps(root, "verify_files", "check_device_key", "register 1")
    assert done.returncode == 0, done.stderr
    assert ((art / "manifest.json").read_bytes(), (art / "manifest.sig").read_bytes()) == shipped
    loaded = load_artifact(art, trusted=trusted)
    assert [p.name for p in loaded.engines] == ["orin-sm87-trt10.3.0.plan"]
    with pytest.raises(
        ArtifactError, match=r"device\.json: signed by key [0-9a-f]{16}, which is not"
    ):
        load_artifact(art, trusted=[load_public_key(ops_pub)])

    monkeypatch.setenv("POMEXPORT_DEVICE_KEY", str(other_key))  # not among the trusted keys
    done = _steps(root, "verify_files", "check_device_key", "register 1")
    assert done.returncode != 0 and "public key is not in POMEXPORT_TRUSTED_KEYS" in done.stderr
    assert not (art / "device.sig").exists()
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 2 trusted key"):
        load_artifact(art, trusted=trusted)
    load_artifact(art, trusted=[])  # no keys: integrity only, as for an unsigned manifest


def _device_record(art: Path, **changes) -> None:
    """Write device.json by hand (what an attacker with write access would do)."""
    files = {}
    for name in ("engines/x-sm87-trt10.3.0.plan",):
        (art / name).parent.mkdir(parents=True, exist_ok=True)
        (art / name).write_bytes(b"plan")
        files[name] = {"sha256": hashlib.sha256(b"plan").hexdigest(), "bytes": 4}
    record = {
        "format": "pomexport-device-files",
        "format_version": 1,
        "manifest_sha256": hashlib.sha256((art / "manifest.json").read_bytes()).hexdigest(),
        "files": files,
    }
    record.update(changes)
    (art / "device.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    "changes, refusal",
    [
        ({}, None),
        ({"manifest_sha256": "0" * 64}, r"device\.json: records files built for another manifest"),
        (
            {"files": {"model.onnx": {"sha256": "0" * 64, "bytes": 1}}},
            r"device\.json: may list only plugins/\*\.so, engines/\*\.plan and timing\.cache",
        ),
        (
            {"files": {"engines/../model.onnx.plan": {"sha256": "0" * 64, "bytes": 1}}},
            r"device\.json: may list only",
        ),
        ({"format": "pomexport-artifact"}, r"device\.json: not a pomexport-device-files v1"),
    ],
)
def test_device_record_rules(extracted, tmp_path, changes, refusal):
    """What the loaders accept from device.json (docs/design.md §6.1): only device-built file
    names, bound to the manifest's bytes; its files are hashed like the manifest's."""
    art = Path(shutil.copytree(extracted / "artifact", tmp_path / "art"))
    _device_record(art, **changes)
    if refusal is None:
        assert "engines/x-sm87-trt10.3.0.plan" in load_artifact(art).files
        (art / "engines/x-sm87-trt10.3.0.plan").write_bytes(b"PLAN")  # same size, other bytes
        with pytest.raises(
            ArtifactError, match=r"engines/x-sm87-trt10\.3\.0\.plan: sha256 mismatch"
        ):
            load_artifact(art)
        return
    with pytest.raises(ArtifactError, match=refusal):
        load_artifact(art)
