"""The deploy bundle of ``pomexport package``: one deterministic tar.gz built on the device.

```
bundle.json          format, target versions (targets.py), model, IO contract, sha256 of every file
SHA256SUMS           the same hashes for ``sha256sum -c`` (build.sh checks them before building)
README.md            for the device
build.sh             device build: plugin + C++ runtime (CMake), engine (trtexec), registration
artifact/            the artifact, reduced to the TensorRT flavors: manifest.json (its files
                     table reduced to match), model.onnx, model.plugin.onnx (+ external data),
                     and, when the artifact has one, its decoder stage (decoder/<role>.onnx and
                     the manifest's ``decoder`` entry; bundle.json's ``decoder`` names them)
src/plugin/**        runtime/plugin (PolyMixer TensorRT plugin)
src/cpp/**           runtime/cpp (pomrt, the C++ runtime and C API)
```

Same artifact + same target + same pomexport -> same bytes: members sorted, fixed mtime,
uid/gid 0, empty owner names, modes 0644/0755, gzip header without name and time. The file
is written to a temp file beside ``out``, fsynced and renamed (``models.weights.atomic_write``).
:func:`pomexport.export.bundle_check.verify_bundle` checks and unpacks one.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pomexport.errors import ArtifactError
from pomexport.export.artifact import MANIFEST, PLUGIN, PORTABLE, Artifact, load_artifact
from pomexport.export.artifact.atomic import atomic_write
from pomexport.export.artifact.decoder import KEY as DECODER_KEY
from pomexport.export.artifact.paths import external_data_locations, sha256_file
from pomexport.export.artifact.signing import (
    BUNDLE_SIGNATURE,
    MANIFEST_SIGNATURE,
    load_private_key,
    signature_document,
)
from pomexport.export.targets import DeployTarget, get_target

log = logging.getLogger(__name__)

FORMAT = "pomexport-bundle"
FORMAT_VERSION = 1
BUNDLE_MANIFEST = "bundle.json"
SUMS = "SHA256SUMS"
BUILD_SCRIPT = "build.sh"
README = "README.md"
ARTIFACT_DIR = "artifact"
ENGINE_FLAVOR = "plugin"  # trtexec builds from model.plugin.onnx with --dynamicPlugins
MTIME = 946684800  # 2000-01-01T00:00:00Z: fixed (GNU tar warns about 1970 timestamps)
_DATA = Path(__file__).parent / "data"
_RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
SOURCES = {"src/plugin": _RUNTIME / "plugin", "src/cpp": _RUNTIME / "cpp"}


@dataclass(frozen=True)
class _Member:
    """One bundle file: its bytes, or a path read when the tar is written."""

    name: str
    sha256: str
    size: int
    data: bytes | None = None
    path: Path | None = None
    executable: bool = False


@dataclass(frozen=True)
class BundleResult:
    """What :func:`package` wrote."""

    path: Path
    target: DeployTarget
    files: int
    bytes: int
    sha256: str

    @property
    def summary(self) -> str:
        return (
            f"wrote {self.path} ({self.files} files, {self.bytes / 2**20:.1f} MiB, sha256 "
            f"{self.sha256[:12]}...) for {self.target.name}; on the device: "
            f"mkdir m && tar xzf {self.path.name} -C m && cd m && ./build.sh"
        )


def _from_bytes(name: str, data: bytes, executable: bool = False) -> _Member:
    digest = hashlib.sha256(data).hexdigest()
    return _Member(name, digest, len(data), data=data, executable=executable)


def _from_path(name: str, path: Path, sha256: str | None = None) -> _Member:
    digest = sha256 or sha256_file(path)
    executable = bool(path.stat().st_mode & 0o100)
    return _Member(name, digest, path.stat().st_size, path=path, executable=executable)


def _source_files(root: Path) -> list[Path]:
    """Source files under ``root``: no dot-files, caches or build folders."""
    skip = {"__pycache__", "build"}
    files = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in skip for p in parts) or not path.is_file():
            continue
        files.append(path)
    if not (root / "CMakeLists.txt").is_file():
        raise ArtifactError(f"{root}: no CMakeLists.txt (is pomexport installed with its sources?)")
    return files


def _source_members() -> list[_Member]:
    members = []
    for prefix, root in SOURCES.items():
        for path in _source_files(root):
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            members.append(_from_path(name, path))
    return members


def _shipped_files(artifact: Artifact) -> list[str]:
    """The two TensorRT flavors and the external-data files they name."""
    missing = [f for f in ("portable", "plugin") if f not in artifact.manifest["flavors"]]
    if missing:
        raise ArtifactError(
            f"{artifact.root}: has no {' / '.join(missing)} flavor; a bundle needs both "
            "(rebuild it with `pomexport build`, which exports both)"
        )
    names = set()
    for name in (PORTABLE, PLUGIN, *_decoder_files(artifact)):
        names.add(name)
        base = Path(name).parent.as_posix()
        for location in external_data_locations(artifact.path(name)):
            names.add(location if base == "." else f"{base}/{location}")
    return sorted(names)


def _decoder_files(artifact: Artifact) -> list[str]:
    """The decoder stage's graphs (docs/design.md §6.2), by role; none without a decoder."""
    entry = artifact.manifest.get(DECODER_KEY)
    return [] if entry is None else [entry["files"][role] for role in sorted(entry["files"])]


def _artifact_members(artifact: Artifact, private=None) -> list[_Member]:
    """The reduced artifact: its TensorRT flavors and a manifest listing exactly those."""
    names = _shipped_files(artifact)
    manifest = dict(artifact.manifest)
    manifest["flavors"] = {f: n for f, n in manifest["flavors"].items() if n in names}
    manifest["files"] = {n: artifact.files[n] for n in names}
    manifest.pop("engines", None)  # engine records of plans not shipped
    if manifest.get(DECODER_KEY, {}).get("engines") is not None:  # the decoder's, likewise
        manifest[DECODER_KEY] = {k: v for k, v in manifest[DECODER_KEY].items() if k != "engines"}
    text = json.dumps(manifest, indent=2) + "\n"
    members = [_from_bytes(f"{ARTIFACT_DIR}/{MANIFEST}", text.encode())]
    if private is not None:  # the reduced manifest is new bytes: sign them for the device
        signature = signature_document(text.encode(), private)
        members.append(_from_bytes(f"{ARTIFACT_DIR}/{MANIFEST_SIGNATURE}", signature))
    for name in names:
        # The hash load_artifact just verified; _write_tar checks the bytes it reads against it.
        sha = artifact.files[name]["sha256"]
        members.append(_from_path(f"{ARTIFACT_DIR}/{name}", artifact.path(name), sha))
    return members


def _profile_shapes(artifact: Artifact) -> dict[str, str]:
    """trtexec's --minShapes/--optShapes/--maxShapes values from the IO contract and batch."""
    shapes = {}
    for key, rows in zip(("min", "opt", "max"), artifact.batch, strict=True):
        specs = []
        for spec in artifact.inputs:
            dims = [rows if d == "B" else d for d in spec["shape"]]
            if not all(isinstance(d, int) for d in dims):
                raise ArtifactError(f"{spec['name']}: shape {spec['shape']} has unknown dims")
            specs.append(f"{spec['name']}:{'x'.join(str(d) for d in dims)}")
        shapes[key] = ",".join(specs)
    return shapes


def _trtexec_line(shapes: dict[str, str], workspace_mib: int) -> str:
    """The engine build of build.sh, for bundle.json and README.md (build.sh runs the same).
    ``--noTF32``: trtexec enables TF32 by default, which would run the graph's fp32 GEMMs with
    10-bit mantissas; every type comes from the ONNX (docs/design.md §4)."""
    cap = f" --memPoolSize=workspace:{workspace_mib}" if workspace_mib > 0 else ""
    return (
        f"trtexec --onnx=artifact/{PLUGIN} --stronglyTyped --noTF32 "
        "--dynamicPlugins=build/plugin/libpomexport_plugins.so "
        f"--minShapes={shapes['min']} --optShapes={shapes['opt']} --maxShapes={shapes['max']}"
        f"{cap} --timingCacheFile=build/timing.cache --saveEngine=build/model.plan --skipInference"
    )


def _build_script(
    target: DeployTarget, shapes: dict[str, str], workspace_mib: int, decoder: list[str]
) -> str:
    """build.sh with its configuration; ``decoder``: the decoder graphs, one engine each."""
    config = "\n".join(
        [
            "# -- written by pomexport package --",
            f"TARGET={target.name}",
            f'CUDA_ARCHS="{target.cuda_architectures}"',
            f"ENGINE_ONNX={PLUGIN}",
            f'DECODER_ONNX="{" ".join(decoder)}"',
            f'WORKSPACE_MIB="${{WORKSPACE_MIB:-{workspace_mib}}}"',
            f'MIN_SHAPES="{shapes["min"]}"',
            f'OPT_SHAPES="{shapes["opt"]}"',
            f'MAX_SHAPES="{shapes["max"]}"',
        ]
    )
    return (_DATA / "bundle_build.sh").read_text().replace("# @CONFIG@", config)


def _readme(artifact: Artifact, target: DeployTarget, trtexec: str, workspace: int) -> str:
    stack = f"TensorRT {target.tensorrt}, CUDA {target.cuda}"
    if target.jetpack:
        stack = f"JetPack {target.jetpack}: {stack}"
    values = {
        "@MODEL@": artifact.model_name,
        "@PRECISION@": artifact.precision,
        "@TARGET@": target.name,
        "@DEVICES@": ", ".join(target.devices),
        "@STACK@": stack,
        "@SM@": ", ".join(f"sm_{s}" for s in target.sm),
        "@BATCH@": "{}..{} (opt {})".format(*artifact.batch[::2], artifact.batch[1]),
        "@WORKSPACE@": f"{workspace} MiB (WORKSPACE_MIB)" if workspace else "none (WORKSPACE_MIB)",
        "@TRTEXEC@": trtexec,
    }
    text = (_DATA / "bundle_README.md").read_text()
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def _pomexport_version() -> str:
    try:
        return metadata.version("pomexport")
    except metadata.PackageNotFoundError:
        return "unknown"


def _listing(artifact: Artifact, target: DeployTarget, members: list[_Member], extra: dict) -> dict:
    """bundle.json: everything a device (or verify-bundle) needs to know, no timestamps."""
    manifest = artifact.manifest
    listing = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "target": target.to_dict(),
        "model": {
            "name": artifact.model_name,
            "precision": artifact.precision,
            "variant": artifact.variant,
            "config": manifest["model"]["config"],
        },
        "artifact": ARTIFACT_DIR,
        "batch": manifest["batch"],
        "io": manifest["io"],
        "op": manifest.get("op"),
        "engine": extra,
        "source": {
            "pomexport": _pomexport_version(),
            "artifact_created_utc": manifest.get("created_utc"),
            "artifact_versions": manifest.get("versions"),
        },
        "files": {m.name: {"sha256": m.sha256, "bytes": m.size} for m in members},
    }
    entry = manifest.get(DECODER_KEY)
    if entry is not None:  # absent without a decoder: those bundles keep their bytes
        files = {r: f"{ARTIFACT_DIR}/{n}" for r, n in sorted(entry["files"].items())}
        listing["decoder"] = {"kind": entry["kind"], "precision": entry["precision"]}
        listing["decoder"]["files"] = files
    return listing


def _members(
    artifact: Artifact, target: DeployTarget, workspace_mib: int, private=None
) -> list[_Member]:
    """Every member of the bundle, bundle.json last computed (it hashes all the others);
    with ``private`` (an Ed25519 key) the artifact's manifest.sig and bundle.sig too."""
    shapes = _profile_shapes(artifact)
    trtexec = _trtexec_line(shapes, workspace_mib)
    members = [
        _from_bytes(
            BUILD_SCRIPT,
            _build_script(target, shapes, workspace_mib, _decoder_files(artifact)).encode(),
            True,
        ),
        _from_bytes(README, _readme(artifact, target, trtexec, workspace_mib).encode()),
        *_artifact_members(artifact, private),
        *_source_members(),
    ]
    members.sort(key=lambda m: m.name)
    sums = "".join(f"{m.sha256}  {m.name}\n" for m in members)
    members.append(_from_bytes(SUMS, sums.encode()))
    engine = {"flavor": ENGINE_FLAVOR, "workspace_mib": workspace_mib, "trtexec": trtexec}
    listing = _listing(artifact, target, sorted(members, key=lambda m: m.name), engine)
    text = (json.dumps(listing, indent=2) + "\n").encode()
    members.append(_from_bytes(BUNDLE_MANIFEST, text))
    if private is not None:  # beside bundle.json, not listed in it (it cannot hash itself)
        members.append(_from_bytes(BUNDLE_SIGNATURE, signature_document(text, private)))
    return sorted(members, key=lambda m: m.name)


class _HashingReader:
    """A file wrapper hashing what tarfile reads (the bytes written are the bytes listed)."""

    def __init__(self, f) -> None:
        self._f = f
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        return data


def _tarinfo(member: _Member) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member.name)
    info.size = member.size
    info.mtime = MTIME
    info.mode = 0o755 if member.executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _add(tar: tarfile.TarFile, member: _Member) -> None:
    info = _tarinfo(member)
    if member.data is not None:
        tar.addfile(info, io.BytesIO(member.data))
        return
    with open(member.path, "rb") as f:
        reader = _HashingReader(f)
        tar.addfile(info, reader)
    if reader.digest.hexdigest() != member.sha256:
        raise ArtifactError(f"{member.path}: changed while it was being packaged")


def _write_tar(out: Path, members: list[_Member]) -> None:
    def write(tmp: Path) -> None:
        with (
            open(tmp, "wb") as raw,
            # filename "" and mtime 0: the gzip header carries neither the temp name nor a time.
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for member in members:
                _add(tar, member)

    atomic_write(out, write)


def package(
    artifact: str | os.PathLike,
    target: str,
    out: str | os.PathLike,
    workspace_mib: int | None = None,
    sign_key: str | os.PathLike | None = None,
) -> BundleResult:
    """Write the deploy bundle of ``artifact`` for ``target`` (targets.py) to ``out``.

    The artifact is loaded hash-verified and must have both the portable and the plugin
    flavor; ``workspace_mib`` overrides the target's builder workspace cap (0: none).
    ``sign_key``: an Ed25519 private key (``pomexport keygen``) signing bundle.json
    (``bundle.sig``) and the bundled artifact's manifest (``artifact/manifest.sig``).
    Raises ArtifactError/ConfigError (one line) before anything is written.
    """
    deploy = get_target(target)
    workspace = deploy.workspace_mib if workspace_mib is None else int(workspace_mib)
    if workspace < 0:
        raise ArtifactError(f"workspace cap must be >= 0 MiB, got {workspace}")
    out = Path(out)
    if out.is_dir():
        raise ArtifactError(f"{out}: is a directory; --out takes a file name (BUNDLE.tar.gz)")
    private = load_private_key(sign_key) if sign_key is not None else None
    loaded = load_artifact(artifact)
    members = _members(loaded, deploy, workspace, private)
    _write_tar(out, members)
    size = out.stat().st_size
    log.info("wrote %s (%d members, %d bytes)", out, len(members), size)
    return BundleResult(out, deploy, len(members), size, sha256_file(out))
