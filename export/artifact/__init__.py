"""THE artifact directory of docs/design.md §6: its one manifest writer and its one loader.

```
<out>/manifest.json      model config, IO contract, precision, variant, sha256 of every file
<out>/model.onnx         portable flavor (+ model.onnx.data when over 2 GB)
<out>/model.plugin.onnx  plugin flavor
<out>/engines/<gpu>-sm<NN>-trt<ver>.plan
<out>/timing.cache
<out>/plugins/libpomexport_plugins.so   (optional: the PolyMixer plugin library)
```

Writes are atomic (temp file + fsync + rename) and the manifest is written last, so a reader
never sees a manifest naming a half-written file. :func:`load_artifact` verifies every hash
and refuses any path leaving the directory before anything is used. Later stages (engine
builds, calibration) add their files and call :func:`write_manifest` again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from pomexport.errors import ArtifactError, PomExportError
from pomexport.export.artifact.atomic import atomic_write
from pomexport.export.artifact.contract import (
    DOMAIN,
    OP_TYPE,
    OP_VERSION,
    STEP_INPUTS,
    STEP_OUTPUTS,
    TensorSpec,
)
from pomexport.export.artifact.graph_check import (
    check_initializers,
    check_io_dims,
    check_mixer_nodes,
)
from pomexport.export.artifact.limits import DEFAULT_LIMITS, Limits, SizeBudget, check_json_depth
from pomexport.export.artifact.paths import (
    external_data_refs,
    read_onnx_bytes,
    read_onnx_graph,
    safe_member,
    sha256_file,
)
from pomexport.export.artifact.pinned import private_copy
from pomexport.export.artifact.schema import check_manifest
from pomexport.export.artifact.signing import (
    MANIFEST_SIGNATURE,
    MAX_SIGNATURE_BYTES,
    TrustedKey,
    check_signature,
    trusted_keys,
)
from pomexport.models.config import PoMDiTConfig

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PORTABLE = "model.onnx"
PLUGIN = "model.plugin.onnx"
ENGINES = "engines"
TIMING_CACHE = "timing.cache"
PLUGINS = "plugins"  # plugin libraries: hashed like every file, verified again before dlopen
FORMAT = "pomexport-artifact"
FORMAT_VERSION = 1
FLAVOR_FILES = {"portable": PORTABLE, "plugin": PLUGIN}
MODEL_DTYPES = {"fp32": "float32", "fp16": "float16"}
_TOOLS = ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "pomexport")


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that shape an artifact (absent ones omitted)."""
    versions = {}
    for name in _TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _dims(spec: TensorSpec, cfg: PoMDiTConfig) -> list[int | str]:
    """Symbolic dims resolved against the config; the batch stays the symbol ``B``."""
    known = {
        "C_in": cfg.in_channels,
        "H": cfg.input_size,
        "W": cfg.input_size,
        "L": cfg.depth,
        "C": cfg.state_width,
    }
    return [known.get(d, d) for d in spec.shape]


def io_contract(cfg: PoMDiTConfig, model_dtype: str) -> dict[str, list[dict]]:
    """The step graph's I/O (contract.py) with dims and dtypes resolved for one model."""

    def entry(spec: TensorSpec) -> dict:
        dtype = model_dtype if spec.dtype == "model" else spec.dtype
        shape = _dims(spec, cfg)
        return {"name": spec.name, "shape": shape, "dtype": dtype, "meaning": spec.meaning}

    return {"inputs": [entry(s) for s in STEP_INPUTS], "outputs": [entry(s) for s in STEP_OUTPUTS]}


def build_manifest(
    cfg: PoMDiTConfig,
    model_name: str,
    precision: str,
    flavors: list[str],
    opset: int,
    batch: tuple[int, int, int],
    model_dtype: str | None = None,
    gates: dict | None = None,
) -> dict:
    """Everything but the file hashes (:func:`write_manifest` adds those).

    ``gates``: accuracy tolerances per precision (``export/artifact/gates.py``), read by
    ``pomexport verify``; omitted when None.
    """
    model_dtype = model_dtype or MODEL_DTYPES[precision]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": model_name, "config": cfg.to_dict()},
        "variant": cfg.variant,
        "precision": precision,
        "flavors": {f: FLAVOR_FILES[f] for f in flavors},
        "opset": opset,
        "batch": {"min": batch[0], "opt": batch[1], "max": batch[2]},
        "io": io_contract(cfg, model_dtype),
        "op": {
            "domain": DOMAIN,
            "type": OP_TYPE,
            "version": OP_VERSION,
            "attributes": {
                "variant": cfg.variant,
                "order": cfg.order,
                "gate": cfg.gate,
                "sel_heads": cfg.sel_heads,
            },
        },
        "versions": tool_versions(),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if gates is not None:
        manifest["gates"] = gates
    return manifest


def _member_files(root: Path) -> list[str]:
    """Regular files under ``root`` (posix, relative), without the manifest and temp files."""
    names = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in (MANIFEST, MANIFEST_SIGNATURE) or any(p.startswith(".") for p in Path(rel).parts):
            continue
        if path.is_symlink():
            raise ArtifactError(f"{rel}: refusing to record a symlink in an artifact")
        if path.is_file():
            names.append(rel)
    return names


def write_manifest(root: str | os.PathLike, manifest: dict) -> Path:
    """Hash every file under ``root`` into ``manifest["files"]``; write manifest.json last.

    Call again after adding files (engines, timing cache): the manifest is rewritten
    atomically with fresh hashes, other keys kept as given.
    """
    root = Path(root)
    files = {}
    for name in _member_files(root):
        path = root / name
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {**manifest, "files": files}
    text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
    (root / MANIFEST_SIGNATURE).unlink(missing_ok=True)  # signs the old bytes: sign again
    atomic_write(root / MANIFEST, lambda tmp: tmp.write_text(text))
    log.info("wrote %s (%d files)", root / MANIFEST, len(files))
    return root / MANIFEST


@contextmanager
def artifact_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on ``<parent>/.<name>.lock`` while writing ``out``.

    Two builds into one directory then run one after the other (the second waits) instead
    of interleaving their renames. The kernel drops the lock when its holder dies (SIGKILL
    included). The holder deletes the lock file when done; a waiter that locked a file
    deleted meanwhile retries on the new one, so two holders never coexist. No-op where
    fcntl is missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".{out.name}.lock"
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks
        yield lock
        return
    handle = _locked(lock, fcntl)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # before unlocking: a waiter then sees a stale inode
        handle.close()


@contextmanager
def staged_artifact(
    out: str | os.PathLike, error: type[PomExportError] = ArtifactError
) -> Iterator[Path]:
    """Write an artifact into an empty staging directory beside ``out``; rename it into
    place when the ``with`` body succeeds, so ``out`` is always the old artifact or the
    new one, never half of either.

    ``out`` may be absent, empty or an earlier artifact; anything else raises ``error``.
    Holds :func:`artifact_lock` throughout and first removes staging directories left by
    writers that died (SIGKILL, power loss), which the lock proves are nobody's.
    """
    out = Path(out)
    if out.resolve() in _HELD:
        # ``out`` is a staging folder this process is writing (build -> export_model): it is
        # locked and swapped in by the outer writer already. Staging it again would put a
        # second staging folder and lock file beside it, which nothing removes after a kill.
        yield out
        return
    _writable_parent(out, error)
    with artifact_lock(out):
        if out.exists() and not out.is_dir():
            raise error(f"{out}: exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
            raise error(f"{out}: not empty and not a pomexport artifact; choose another --out")
        _remove_stale(out)
        staging = _staging_dir(out)
        _HELD.add(staging.resolve())
        try:
            yield staging
            _swap_in(staging, out)
        finally:
            _HELD.discard(staging.resolve())
            shutil.rmtree(staging, ignore_errors=True)


def _writable_parent(out: Path, error: type[PomExportError]) -> None:
    """Create ``out``'s parent and prove a file can be made there, before any export work:
    one line instead of a PermissionError traceback minutes later."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe-", dir=out.parent)
    except OSError as e:
        raise error(f"cannot write {out}: {e.strerror or e}") from e
    os.close(fd)
    os.unlink(probe)


# Staging folders this process is writing into (see staged_artifact's re-entry).
_HELD: set[Path] = set()


def _remove_stale(out: Path) -> None:
    """Remove what writers of ``out`` that died left beside it (the caller holds the lock, so
    none of it is anybody's): staging and old folders, and the nested staging folders and
    lock files that builds before issue 22 made (``..<out>.building-*``)."""
    patterns = (f".{out.name}.building-*", f".{out.name}.old-*", f"..{out.name}.building-*")
    for pattern in patterns:
        for stale in out.parent.glob(pattern):
            log.info("removing %s (left by an interrupted write)", stale)
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _staging_dir(out: Path) -> Path:
    """An empty directory beside ``out`` with the mode a plain mkdir gives (mkdtemp: 0700)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    return staging


def _swap_in(built: Path, out: Path) -> None:
    """Rename the finished ``built`` directory to ``out``, replacing an old artifact."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    os.replace(built, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _locked(lock: Path, fcntl):
    """An open handle holding the flock of the file currently at ``lock``."""
    while True:
        handle = open(lock, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another build holds %s; waiting", lock)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # locked a file its holder deleted: lock the new one


# Keep every single protobuf under the 2 GiB limit, with room for the graph itself.
EXTERNAL_DATA_THRESHOLD = (1 << 31) - (1 << 26)


def _initializer_bytes(model) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def save_onnx(model, path: str | os.PathLike) -> list[str]:
    """Write an ONNX model atomically; weights go to ``<name>.data`` when over ~2 GB.

    Both files are written into a temporary folder beside ``path``, fsynced, then renamed
    into place (data first). Returns the names written (relative to ``path``'s folder).
    Saving externally moves the weights out of ``model``: saving the same proto again (the
    other flavor) writes a graph that shares the first file's ``.data``.
    """
    import tempfile

    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    external = _initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    data_name = f"{path.name}.data"
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as tmp:
        tmp_model = Path(tmp) / path.name
        onnx.save_model(
            model,
            str(tmp_model),
            save_as_external_data=external,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=1024,
        )
        written = [data_name, path.name] if external else [path.name]
        for name in written:
            with open(Path(tmp) / name, "rb") as f:
                os.fsync(f.fileno())
            os.replace(Path(tmp) / name, path.parent / name)
    log.info("wrote %s%s", path, " (+ external data)" if external else "")
    return written


@dataclass(frozen=True)
class Artifact:
    """A verified artifact directory: its manifest and the paths it names."""

    root: Path
    manifest: dict

    @property
    def config(self) -> PoMDiTConfig:
        return PoMDiTConfig.from_dict(self.manifest["model"]["config"])

    @property
    def model_name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def precision(self) -> str:
        return self.manifest["precision"]

    @property
    def variant(self) -> str:
        return self.manifest["variant"]

    @property
    def opset(self) -> int:
        return int(self.manifest["opset"])

    @property
    def batch(self) -> tuple[int, int, int]:
        b = self.manifest["batch"]
        return int(b["min"]), int(b["opt"]), int(b["max"])

    @property
    def flavors(self) -> tuple[str, ...]:
        return tuple(self.manifest["flavors"])

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["io"]["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.manifest["io"]["outputs"]

    @property
    def gates(self) -> dict:
        """Accuracy gates per precision declared at build time ({} when none)."""
        return self.manifest.get("gates") or {}

    @property
    def files(self) -> dict[str, dict]:
        return self.manifest["files"]

    def path(self, name: str) -> Path:
        """Path of a file the manifest lists (verified when the artifact was loaded)."""
        if name not in self.files:
            raise ArtifactError(f"{name}: not listed in {self.root / MANIFEST}")
        return safe_member(self.root, name, MANIFEST)

    def read_verified(self, name: str) -> bytes:
        """The bytes of a listed file, hashed again as read: what the caller uses is what was
        hashed. For files that are code or deserialised (engine plans), where a file swapped
        after :func:`load_artifact` must be refused, not run."""
        data = self.path(name).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.files[name]["sha256"]:
            raise ArtifactError(
                f"{name}: sha256 does not match {MANIFEST} (the file changed after the "
                "artifact was loaded); refusing to use it"
            )
        return data

    @contextmanager
    def verified_onnx(self, name: str) -> Iterator[bytes | str]:
        """What ONNX Runtime should open for the listed ONNX file ``name``: its bytes, hashed
        as read, or, when it has external data, the path of a private copy of it and its data
        written from the hashed streams (``export/artifact/pinned.py``). A file swapped after
        :func:`load_artifact` is refused, never run."""
        data = self.read_verified(name)
        refs = external_data_refs(read_onnx_bytes(name, data))
        if not refs:
            yield data
            return
        base = Path(name).parent
        members = {(base / ref.location).as_posix() for ref in refs}
        copies = {m: (self.path(m), self.files[m]["sha256"]) for m in sorted(members)}
        with private_copy(copies, str(self.root)) as folder:
            (folder / name).write_bytes(data)
            yield str(folder / name)

    def onnx_path(self, flavor: str = "portable") -> Path:
        """``model.onnx`` (portable) or ``model.plugin.onnx`` (plugin)."""
        if flavor not in self.manifest["flavors"]:
            raise ArtifactError(
                f"{self.root.name} has no {flavor!r} flavor (has: {', '.join(self.flavors)})"
            )
        return self.path(self.manifest["flavors"][flavor])

    @property
    def engines(self) -> list[Path]:
        """TensorRT engine plans listed in the manifest."""
        return [self.path(n) for n in self.files if n.startswith(f"{ENGINES}/")]

    @property
    def plugin_library(self) -> tuple[Path, str] | None:
        """(path, manifest sha256) of the plugin library under ``plugins/`` (None: none).

        The hash was checked at load time; a loader hashes the file again right before
        loading it (it is code), see ``export/engine/builder.py::load_plugin_library``.
        """
        for name in sorted(self.files):
            if name.startswith(f"{PLUGINS}/") and name.endswith(".so"):
                return self.path(name), self.files[name]["sha256"]
        return None


def _read_signature(root: Path) -> bytes | None:
    """manifest.sig's bytes (None: absent); a symlink or an oversized file is refused."""
    path = root / MANIFEST_SIGNATURE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ArtifactError(f"{path}: not a plain file")
    if not path.exists():
        return None
    if path.stat().st_size > MAX_SIGNATURE_BYTES:
        raise ArtifactError(f"{path}: too large for a signature")
    return path.read_bytes()


def _read_manifest(root: Path, limits: Limits, keys: tuple[TrustedKey, ...]) -> dict:
    path = root / MANIFEST
    if not root.is_dir():
        raise ArtifactError(f"{root}: not an artifact directory")
    if path.is_symlink():  # the writer never makes one; whose file would it be?
        raise ArtifactError(f"{path}: is a symlink (a pomexport manifest is a plain file)")
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (not a pomexport artifact)")
    size = path.stat().st_size
    if size > limits.manifest_bytes:
        raise ArtifactError(f"{path}: {size} bytes (limit {limits.manifest_bytes})")
    try:
        raw = path.read_bytes()  # checked and parsed from these bytes: no second read
    except OSError as e:
        raise ArtifactError(f"{path}: unreadable manifest ({e.strerror})") from e
    check_signature(str(path), raw, _read_signature(root), keys)  # before any other file
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path}: unreadable manifest ({str(e)[:200]})") from e
    check_json_depth(str(path), manifest, limits)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format_version {manifest.get('format_version')} unsupported")
    check_manifest(path, manifest)
    return manifest


def _refuse_symlinked(root: Path, name: str) -> None:
    """No component of a listed path may be a symlink, even one pointing inside: the writer
    never makes one, and a link's target can change between the check and the use."""
    current = root
    for part in Path(name).parts:
        current = current / part
        if current.is_symlink():
            rel = current.relative_to(root).as_posix()
            raise ArtifactError(f"{name}: {rel} is a symlink (an artifact holds plain files)")


def _check_file(root: Path, name: str, entry: dict) -> None:
    """Path, type, links and size of one listed file: metadata only, nothing read."""
    path = safe_member(root, name, MANIFEST)
    _refuse_symlinked(root, name)
    try:
        info = path.stat() if path.is_file() else None
    except OSError as e:
        raise ArtifactError(f"{name}: cannot read it ({e.strerror})") from e
    if info is None:
        raise ArtifactError(f"{name}: listed in {MANIFEST} but missing from {root}")
    if info.st_nlink > 1:
        # A hard link shares its bytes with a file elsewhere: who else can write them?
        raise ArtifactError(
            f"{name}: has {info.st_nlink} hard links; copy the artifact (cp -r) instead of linking"
        )
    if info.st_size != entry["bytes"]:  # before hashing: a wrong size costs no read
        raise ArtifactError(
            f"{name}: {info.st_size} bytes but {MANIFEST} says {entry['bytes']}; the artifact "
            "was modified or is corrupt"
        )


def _verify_hash(root: Path, name: str, entry: dict) -> None:
    expected = entry.get("sha256")
    actual = sha256_file(root / name)
    if actual != expected:
        raise ArtifactError(
            f"{name}: sha256 mismatch (manifest {str(expected)[:12]}..., file {actual[:12]}...);"
            " the artifact was modified or is corrupt"
        )


def _verify_onnx(root: Path, name: str, manifest: dict) -> None:
    """External data inside the directory, listed, in bounds; graph I/O as the manifest says."""
    files = manifest["files"]
    model = read_onnx_graph(root / name)
    base = Path(name).parent.as_posix()
    for ref in external_data_refs(model):
        member = ref.location if base == "." else f"{base}/{ref.location}"
        path = safe_member(root, member, name)
        if member not in files:
            raise ArtifactError(
                f"{name}: external data {ref.location!r} is not listed in {MANIFEST}"
            )
        size = path.stat().st_size
        end = size if ref.length == -1 else ref.offset + ref.length
        if ref.offset < 0 or ref.length < -1 or end > size:
            raise ArtifactError(
                f"{name}: tensor {ref.tensor!r} reads bytes {ref.offset}..{end} of "
                f"{ref.location!r}, which has {size}"
            )
    _check_graph_io(name, model, manifest)
    _check_config(name, model, manifest)


def _check_config(name: str, model, manifest: dict) -> None:
    """The manifest's model config (and the ``io`` shapes derived from it) against the graph's
    static dims, initializers and PolyMixer attributes: buffers are sized from the config, so
    it must describe the graph (``export/artifact/graph_check.py``)."""
    cfg = PoMDiTConfig.from_dict(manifest["model"]["config"])
    contract = io_contract(cfg, "float32")
    expected = {e["name"]: e["shape"] for entries in contract.values() for e in entries}
    for kind in ("inputs", "outputs"):
        for entry in manifest["io"][kind]:
            want = expected.get(entry["name"])
            if want is not None and entry["shape"] != want:
                raise ArtifactError(
                    f"{MANIFEST}: io {entry['name']} shape {entry['shape']} but its model "
                    f"config gives {want}; refusing a manifest that contradicts itself"
                )
    symbols = {spec.name: spec.shape for spec in STEP_INPUTS + STEP_OUTPUTS}
    check_io_dims(name, model, expected, symbols)
    check_initializers(name, model, cfg)
    check_mixer_nodes(name, model, cfg)


_ONNX_DTYPES = {"float32": 1, "float16": 10, "int64": 7}


def _check_graph_io(name: str, model, manifest: dict) -> None:
    """Graph input/output names (in order), dtypes and ranks against the manifest's ``io``."""
    io = manifest.get("io")
    if io is None:
        return
    model_entry = manifest.get("model")
    config = model_entry.get("config") if isinstance(model_entry, dict) else None
    text = isinstance(config, dict) and bool(config.get("text_dim"))
    for kind, values in (("inputs", model.graph.input), ("outputs", model.graph.output)):
        want = [e for e in io[kind] if not (text and e["name"] == "label")]
        names = [v.name for v in values if not (text and v.name == "text_emb")]
        if names != [e["name"] for e in want]:
            raise ArtifactError(
                f"{name}: graph {kind} {names} differ from {MANIFEST}'s {[e['name'] for e in want]}"
            )
        for value, entry in zip([v for v in values if v.name in names], want, strict=True):
            tensor = value.type.tensor_type
            dtype = _ONNX_DTYPES.get(entry.get("dtype"))
            rank = len(entry["shape"]) if isinstance(entry.get("shape"), list) else None
            if dtype is not None and tensor.elem_type != dtype:
                raise ArtifactError(
                    f"{name}: {value.name} is not {entry['dtype']} as {MANIFEST} says"
                )
            if rank is not None and tensor.HasField("shape") and len(tensor.shape.dim) != rank:
                raise ArtifactError(
                    f"{name}: {value.name} has rank {len(tensor.shape.dim)}, not {rank}"
                )


def load_artifact(
    path: str | os.PathLike,
    verify: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    trusted: Sequence[TrustedKey] | None = None,
) -> Artifact:
    """Open an artifact directory, verifying hashes and paths first.

    Raises ArtifactError (one line naming the offending file) for a missing or malformed
    manifest, a path leaving the directory (``..``, absolute, escaping symlink) in the
    manifest or in an ONNX file's external-data locations, a missing file, or a sha256
    mismatch, or a file (or symlink) present but not listed, dot-files excepted.
    ``verify=False`` skips the hashes (paths and the listing are always checked). Sizes,
    counts and symlinks are checked before any hash; ``limits`` bounds the work done before a
    refusal (``export/artifact/limits.py``). With trusted keys (``trusted``, else the CLI's
    ``--trusted-key``, else ``POMEXPORT_TRUSTED_KEYS``), manifest.json must carry a valid
    ``manifest.sig`` by one of them, checked before any other file is read
    (``export/artifact/signing.py``).
    """
    root = Path(path)
    manifest = _read_manifest(root, limits, trusted_keys(trusted))
    files = manifest["files"]
    budget = SizeBudget(MANIFEST, limits)
    if len(files) > limits.members:
        raise ArtifactError(f"{MANIFEST}: lists {len(files)} files (limit {limits.members})")
    for name, entry in files.items():  # declared sizes: bounded before any file is touched
        budget.add(name, entry["bytes"])
    for name, entry in files.items():
        _check_file(root, name, entry)
    for flavor, name in manifest.get("flavors", {}).items():
        if name not in files:
            raise ArtifactError(f"{name}: the {flavor} flavor is not listed in {MANIFEST}")
    _refuse_unlisted(root, files, limits)
    if verify:  # last: every cheaper refusal came first
        for name, entry in files.items():
            _verify_hash(root, name, entry)
    for name in files:
        if name.endswith(".onnx"):
            _verify_onnx(root, name, manifest)
    return Artifact(root=root, manifest=manifest)


def _hidden(rel: str) -> bool:
    return any(part.startswith(".") for part in rel.split("/"))


def _refuse_unlisted(root: Path, files: dict, limits: Limits) -> None:
    """Every entry but manifest.json and dot-files must be listed (runtime/cpp agrees).

    Dot-files are exempt because they are what an interrupted atomic write leaves behind
    (``.name.XXXX.tmp``); no loader ever opens one. Symlinks are not followed: an unlisted
    one is refused like any unlisted file, a directory symlink as one entry.
    """
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath).relative_to(root).as_posix()
        seen += len(dirnames) + len(filenames)
        if seen > 2 * limits.members + 64:  # dot-files too: a directory of 300,000 is refused
            raise ArtifactError(f"{root}: holds more than {2 * limits.members + 64} entries")
        for entry in sorted(dirnames + filenames):
            rel = entry if base == "." else f"{base}/{entry}"
            if _hidden(rel) or rel in (MANIFEST, MANIFEST_SIGNATURE):
                continue
            path = root / rel
            if path.is_symlink() or not path.is_dir():
                if rel not in files:
                    raise ArtifactError(f"{rel}: present in {root} but not listed in {MANIFEST}")
        dirnames[:] = [
            d for d in dirnames if not (d.startswith(".") or (Path(dirpath) / d).is_symlink())
        ]
