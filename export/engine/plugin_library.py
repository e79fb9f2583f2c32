"""The PolyMixer plugin library: check it, copy it into an artifact, load it into TensorRT.

    add_plugin_library("build/tiny", "libpomexport_plugins.so")   # artifact/plugins/*.so + sha256
    load_plugin_library(path, sha256)                              # hash, then register creators

Each process loads a library once, matched by sha256 as the C++ runtime does (docs/design.md,
"TensorRT plugin registration and lookup"). TensorRT is imported lazily: checking and adding a
library need neither TensorRT nor a GPU.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from pomexport.errors import PluginError
from pomexport.export.artifact import (
    PLUGINS,
    Artifact,
    ArtifactDraft,
    edit_artifact,
    load_artifact,
)
from pomexport.export.artifact.contract import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION
from pomexport.export.artifact.pinned import sealed_file
from pomexport.export.engine.target import import_tensorrt

logger = logging.getLogger(__name__)

# sha256 -> (resolved path, registry handle or None when another loader registered it): each
# library loaded once per process; TensorRT's load_library fails on a second load.
_LOADED_PLUGINS: dict[str, tuple[Path, object]] = {}


def registered_creators(registry) -> list[tuple[str, str, str]]:
    """(name, version, namespace) of every creator in TensorRT's plugin ``registry``."""
    return [
        (c.name, c.plugin_version, c.plugin_namespace)
        for c in registry.all_creators
        if hasattr(c, "plugin_namespace")
    ]


def polymixer_registered(registry) -> bool:
    """Whether PolyMixer v1 is registered in namespace "pomexport". Scans the creators rather
    than calling ``get_creator``, which logs an error for every miss (the normal first load)."""
    return (PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE) in registered_creators(registry)


def _verified_bytes(path: Path, sha256: str) -> bytes:
    """The bytes of ``path`` when they hash to ``sha256`` (they are what gets loaded)."""
    if not path.is_file():
        raise PluginError(f"{path}: plugin library not found")
    data = path.read_bytes()  # hashed and loaded from these bytes, not the path (issue 22)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise PluginError(
            f"{path}: sha256 {actual[:12]}... does not match the expected {sha256[:12]}...; "
            "refusing to load it"
        )
    return data


def _refuse_a_second_build(path: Path, sha256: str) -> None:
    """PluginError when another build of the library is loaded in this process already."""
    if _LOADED_PLUGINS:
        other_sha, (other, _) = next(iter(_LOADED_PLUGINS.items()))
        raise PluginError(
            f"{path} (sha256 {sha256[:12]}...): another build of the plugin library is loaded in "
            f"this process ({other}, sha256 {other_sha[:12]}...); TensorRT registers each plugin "
            "once per process, so both cannot be loaded"
        )


def load_plugin_library(path: str | os.PathLike, sha256: str):
    """Hash ``path`` right before loading it (a library is code: it must be the one named),
    then register its creators with TensorRT's plugin registry. Each library is loaded once
    per process, matched by sha256 (at any path) as the C++ runtime does; a second, different
    build is refused (TensorRT registers one (name, version, namespace) per process). Returns
    the registry handle (None when another loader of the process, e.g. libpomrt, had already
    registered the PolyMixer creator: that registration is used)."""
    trt = import_tensorrt()
    path = Path(path)
    if sha256 in _LOADED_PLUGINS:
        return _LOADED_PLUGINS[sha256][1]
    data = _verified_bytes(path, sha256)
    _refuse_a_second_build(path, sha256)
    registry = trt.get_plugin_registry()
    if polymixer_registered(registry):
        logger.warning(
            "%s v%s (namespace %s) is already registered in this process by another loader: "
            "using it instead of loading %s",
            PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE, path,
        )  # fmt: skip
        _LOADED_PLUGINS[sha256] = (path.resolve(), None)
        return None
    with sealed_file(data, path.name) as pinned:  # dlopen maps it; the mapping outlives the fd
        handle = registry.load_library(pinned)
    if handle is None:
        raise PluginError(
            f"{path}: TensorRT's load_library returned nothing: the library could not be opened "
            "(a missing dependency?), exports no getCreators, or one of its creators is already "
            "registered in this process (see TensorRT's log)"
        )
    if not polymixer_registered(registry):
        registry.deregister_library(handle)
        raise PluginError(
            f"{path}: loaded, but it registers no {PLUGIN_NAME} v{PLUGIN_VERSION} creator in "
            f"namespace {PLUGIN_NAMESPACE!r} (a library built from other sources?)"
        )
    _LOADED_PLUGINS[sha256] = (path.resolve(), handle)
    logger.info("loaded the PolyMixer plugin library %s", path)
    return handle


def check_plugin_library(library: str | os.PathLike) -> Path:
    """``library`` if it looks like the plugin library (an ELF ``.so`` file), else PluginError."""
    library = Path(library)
    if not library.is_file() or library.suffix != ".so":
        raise PluginError(f"{library}: not a shared library file (libpomexport_plugins.so)")
    with open(library, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise PluginError(f"{library}: not an ELF shared library")
    return library


def add_plugin_library(
    artifact: Artifact | str | os.PathLike | ArtifactDraft, library: str | os.PathLike
) -> Artifact | ArtifactDraft:
    """Copy the PolyMixer plugin library into ``<artifact>/plugins/`` (replacing an earlier
    one) and record its sha256 in the manifest: from then on the builder, the backend and the
    C++ runtime load it only when it still has that hash. Needs no TensorRT. Given the
    :class:`ArtifactDraft` of a build, adds it there and returns the draft, uncommitted."""
    library = check_plugin_library(library)
    with edit_artifact(artifact) as draft:
        for old in sorted((draft / PLUGINS).glob("*.so")):
            draft.remove(f"{PLUGINS}/{old.name}")
        draft.copy_in(f"{PLUGINS}/{library.name}", library)
        logger.info("added %s to %s", library.name, draft / PLUGINS)
    if isinstance(artifact, ArtifactDraft):
        return artifact
    # written and hashed by this call, moments ago: no signature to ask of it (signing.py)
    return load_artifact(draft.root, verify=False, trusted=())
