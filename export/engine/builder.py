"""The TensorRT engine builder: an artifact's precision-baked ONNX -> a cached engine plan.

    plan = engine_from_onnx("build/tiny")             # function form
    build = EngineFromOnnx("build/tiny", workspace_mb=2048)   # callable form, composes:
    backend = TrtBackend(build)                       # runtime/trt_backend.py calls it

What a build does (docs/design.md §4, §6):

- network: strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` on TensorRT 10;
  TensorRT 11 networks are always strongly typed and the flag is deprecated, so it is not
  set there). No weak typing, no implicit-INT8 calibration: the precision is in the ONNX.
- ONNX: the plugin flavor (``model.plugin.onnx``) when a PolyMixer plugin library is at hand
  (``plugins/*.so`` in the artifact, or given) and its sha256 matches, else the portable one.
  Every parser error goes into one :class:`BuildError` message.
- one optimization profile: every input with a batch axis spans the artifact's batch range
  (``export/artifact/engines.py::profile_shapes``).
- ``timing.cache`` beside the artifact: loaded when present, saved after the build.
- engine cache: ``engines/<gpu>-sm<NN>-trt<ver>.plan``, reused while its
  :class:`~pomexport.export.artifact.engines.EngineKey` (ONNX sha256, TensorRT version, GPU name
  and SM, profile) is unchanged.
- recorded: in a build's draft, in the manifest written once; in a committed artifact, in
  ``device.json`` beside the manifest, which is never rewritten (docs/design.md §6.1:
  ``export/artifact/device.py::record_device_files``), signed with ``device_key`` /
  ``POMEXPORT_DEVICE_KEY``; with trusted keys and no device key, nothing is built.
- ``workspace_mb`` caps the builder's workspace pool (Jetson: shared CPU/GPU memory).
- TF32 off: an fp32 tensor of the ONNX is computed in fp32.
- a tqdm bar per builder phase (:class:`IProgressMonitor`).

The plugin library (check, add to an artifact, load once per process) is
``export/engine/plugin_library.py``.

TensorRT is imported lazily: importing this module needs neither TensorRT nor a GPU.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pomexport.errors import ArtifactError, BuildError, ConfigError, PluginError
from pomexport.export.artifact import (
    TIMING_CACHE,
    Artifact,
    ArtifactDraft,
    edit_artifact,
    load_artifact,
)
from pomexport.export.artifact.device import device_signing_key, record_device_files
from pomexport.export.artifact.engines import (
    EngineKey,
    cached_engine,
    engine_record,
    profile_shapes,
    with_engine_record,
)
from pomexport.export.artifact.signing import trusted_keys

# The plugin library's names, importable from here as before the split.
from pomexport.export.engine.plugin_library import (  # noqa: F401
    add_plugin_library,
    check_plugin_library,
    load_plugin_library,
    polymixer_registered,
    registered_creators,
)
from pomexport.export.engine.target import import_tensorrt, trt_major

logger = logging.getLogger(__name__)

FLAVORS = ("auto", "plugin", "portable")


@dataclass(frozen=True)
class GpuTarget:
    """The CUDA device an engine is built for."""

    index: int
    name: str
    sm: int  # compute capability major * 10 + minor


def gpu_target(device: int = 0) -> GpuTarget:
    """Name and SM of CUDA device ``device`` (BuildError without a GPU)."""
    import torch

    if not torch.cuda.is_available():
        raise BuildError("no CUDA GPU is visible to torch; TensorRT engines are built on the GPU")
    if not 0 <= device < torch.cuda.device_count():
        raise ConfigError(f"CUDA device {device} does not exist ({torch.cuda.device_count()} GPUs)")
    props = torch.cuda.get_device_properties(device)
    return GpuTarget(device, props.name, props.major * 10 + props.minor)


def _parser_error_text(error) -> str:
    """One parser error as ``node 12 (Name, Op): description``."""
    where = []
    node = error.node()
    if node >= 0:
        where.append(f"node {node}")
    # node_name/node_operator exist since TensorRT 8.6; older bindings lack them.
    name = getattr(error, "node_name", lambda: "")()
    op = getattr(error, "node_operator", lambda: "")()
    detail = ", ".join(p for p in (name, op) if p)
    prefix = " ".join(where) + (f" ({detail})" if detail else "")
    return f"{prefix + ': ' if prefix else ''}{error.desc()} [{error.code()}]"


def parse_onnx(trt, network, path: Path, log):
    """Parse ``path`` into ``network``; all parser errors in one BuildError. Returns the
    parser, which owns the weights and must outlive the build. ``log``: the TrtLogger."""
    parser = trt.OnnxParser(network, log)
    # parse_from_file resolves external data (model.onnx.data) relative to the model.
    if parser.parse_from_file(str(path)):
        return parser
    errors = [_parser_error_text(parser.get_error(i)) for i in range(parser.num_errors)]
    errors = errors or log.take_errors() or ["no error reported"]
    raise BuildError(
        f"{path.name}: TensorRT's ONNX parser failed with {len(errors)} error(s): "
        + "; ".join(errors)
    )


def create_network(trt, builder):
    """A strongly typed network definition (the flag is set where it exists and is needed)."""
    flags = 0
    if trt_major(trt) < 11:  # TensorRT 11: always strongly typed, the flag is deprecated
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def add_profile(trt, builder, config, network, shapes) -> None:
    """One optimization profile from ``shapes`` (name -> (min, opt, max)); every dynamic
    network input must have an entry."""
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name in shapes:
            profile.set_shape(tensor.name, *shapes[tensor.name])
        elif any(d < 0 for d in tensor.shape):
            raise BuildError(f"input {tensor.name} {tuple(tensor.shape)} has no profile range")
    if config.add_optimization_profile(profile) < 0:
        raise BuildError(f"TensorRT rejected the optimization profile {shapes}")


def set_timing_cache(config, data: bytes | None) -> None:
    """Start from the persisted timing cache when it is usable here, else from an empty one."""
    cache = config.create_timing_cache(data or b"")
    if data and (cache is None or not config.set_timing_cache(cache, ignore_mismatch=False)):
        logger.warning("timing cache from another GPU or TensorRT version: starting afresh")
        cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise BuildError("TensorRT could not create a timing cache")


@dataclass(frozen=True)
class EngineBuild:
    """What :class:`EngineFromOnnx` produced: the plan in the (reloaded) artifact."""

    artifact: Artifact
    path: Path
    key: EngineKey
    flavor: str  # "plugin" | "portable": the ONNX the engine was built from
    reused: bool  # True: the cached plan matched the key, nothing was built
    seconds: float


class EngineFromOnnx:
    """Callable builder: ``EngineFromOnnx(artifact, ...)()`` -> :class:`EngineBuild`.

    ``flavor``: ``auto`` (plugin when a verified plugin library is at hand), ``plugin`` or
    ``portable``. ``plugin``: (library path, sha256) to use instead of the artifact's
    ``plugins/*.so``. ``workspace_mb``: cap of the builder's workspace pool (None: TensorRT's
    default, the device memory). ``force``: rebuild even when the cached plan matches.
    ``artifact`` may be the :class:`ArtifactDraft` of a build: the engine is written into it
    (its owner commits); else it is recorded in the artifact's device.json, signed with
    ``device_key`` (default ``POMEXPORT_DEVICE_KEY``), manifest.json left as it is.
    :meth:`cached` finds a matching engine without building one.
    """

    def __init__(
        self,
        artifact: Artifact | str | os.PathLike | ArtifactDraft,
        *,
        flavor: str = "auto",
        plugin: tuple[str | os.PathLike, str] | None = None,
        workspace_mb: int | None = None,
        device: int = 0,
        progress: bool = True,
        force: bool = False,
        device_key: str | os.PathLike | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ConfigError(f"flavor must be one of {FLAVORS}, got {flavor!r}")
        if workspace_mb is not None and workspace_mb < 1:
            raise ConfigError(f"--workspace-mb must be >= 1, got {workspace_mb}")
        self.draft = artifact if isinstance(artifact, ArtifactDraft) else None
        if self.draft is not None:
            self.artifact = self.draft.artifact()
        else:
            self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self.flavor, self.plugin = flavor, plugin
        self.workspace_mb, self.device = workspace_mb, device
        self.progress, self.force = progress, force
        self.device_key = device_key

    def __call__(self) -> EngineBuild:
        start = time.perf_counter()
        trt, target, flavor, key = self._key()
        cached = None if self.force else cached_engine(self.artifact, key)
        if cached is not None:
            logger.info("engine cache hit: %s", cached)
            return EngineBuild(self.artifact, cached, key, flavor, True, 0.0)
        self._check_device_key()  # before minutes of building: the record must be acceptable
        plan, timing = self._build(trt, self.artifact.onnx_path(flavor), target)
        artifact = self._store(key, flavor, plan, timing)
        seconds = time.perf_counter() - start
        logger.info("built %s in %.1f s (%s flavor)", key.plan_name, seconds, flavor)
        return EngineBuild(artifact, artifact.path(key.plan_name), key, flavor, False, seconds)

    def cached(self) -> EngineBuild | None:
        """The artifact's engine for this GPU and TensorRT when its manifest records one
        built under the current key (``export/artifact/engines.py``); None when it would
        have to be built. Nothing is built or written."""
        _, _, flavor, key = self._key()
        path = cached_engine(self.artifact, key)
        return None if path is None else EngineBuild(self.artifact, path, key, flavor, True, 0.0)

    def _key(self) -> tuple[object, GpuTarget, str, EngineKey]:
        """(tensorrt, target GPU, ONNX flavor, the engine's cache key) of this build."""
        trt = import_tensorrt()
        target = gpu_target(self.device)
        flavor = self._resolve_flavor()
        onnx_name = self.artifact.manifest["flavors"][flavor]
        key = EngineKey.create(
            self.artifact.files[onnx_name]["sha256"],
            trt.__version__,
            target.name,
            target.sm,
            profile_shapes(self.artifact),
        )
        return trt, target, flavor, key

    def _plugin_source(self) -> tuple[Path, str] | None:
        if self.plugin is not None:
            return Path(self.plugin[0]), self.plugin[1]
        return self.artifact.plugin_library

    def _resolve_flavor(self) -> str:
        """The ONNX flavor to build from; loads (and verifies) the plugin library for it."""
        flavors = self.artifact.flavors
        source = self._plugin_source()
        if self.flavor == "portable" or (self.flavor == "auto" and source is None):
            if "portable" not in flavors:
                raise PluginError(
                    f"{self.artifact.root} has only the plugin flavor and no plugin library "
                    "(plugins/*.so in the artifact, or give one): cannot build its engine"
                )
            return "portable"
        if source is None:
            raise PluginError("flavor 'plugin' needs the PolyMixer plugin library; none given")
        if "plugin" not in flavors:
            if self.flavor == "plugin":
                raise ArtifactError(f"{self.artifact.root} has no plugin flavor")
            return "portable"
        load_plugin_library(*source)
        return "plugin"

    def _build(self, trt, onnx_path: Path, target: GpuTarget) -> tuple[bytes, bytes]:
        """(serialized plan, serialized timing cache) of ``onnx_path`` on ``target``."""
        import torch

        from pomexport.export.engine.progress import TqdmProgressMonitor, trt_logger

        log, monitor = trt_logger(), TqdmProgressMonitor(self.progress)
        log.take_errors()  # forget errors of earlier work: only this build's explain it
        with torch.cuda.device(target.index):
            builder = trt.Builder(log)
            network = create_network(trt, builder)
            parser = parse_onnx(trt, network, onnx_path, log)
            config = self._config(trt, builder, network)
            config.progress_monitor = monitor
            plan = builder.build_serialized_network(network, config)
            del parser  # the network's weights are the parser's until here
            if plan is None:
                errors = log.take_errors() or ["no error logged"]
                raise BuildError(f"TensorRT could not build {onnx_path.name}: " + "; ".join(errors))
            timing = config.get_timing_cache().serialize()
        return bytes(plan), bytes(timing)

    def _config(self, trt, builder, network):
        """Builder config: workspace cap, profile, timing cache; no TF32 and no precision flags,
        because every tensor's type comes from the ONNX (docs/design.md §4): TF32 would silently run
        the graph's fp32 GEMMs (fp32 artifacts, the fp32 islands of fp16 ones) at 10-bit
        mantissa precision."""
        config = builder.create_builder_config()
        config.clear_flag(trt.BuilderFlag.TF32)
        if self.workspace_mb is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace_mb << 20)
        add_profile(trt, builder, config, network, profile_shapes(self.artifact))
        set_timing_cache(config, self._timing_cache_bytes())
        return config

    def _timing_cache_bytes(self) -> bytes | None:
        if TIMING_CACHE not in self.artifact.files:
            return None
        return self.artifact.path(TIMING_CACHE).read_bytes()  # hash verified at load

    def _check_device_key(self) -> None:
        """Refuse (one line) to build into a committed artifact whose device.json could not
        be signed acceptably: trusted keys configured but no (trusted) device key."""
        if self.draft is None:
            device_signing_key(trusted_keys(), self.device_key)

    def _store(self, key: EngineKey, flavor: str, plan: bytes, timing: bytes) -> Artifact:
        """Write the plan and the timing cache atomically and record the engine: into the
        build's draft (the manifest its owner writes once), or, in a committed artifact, in
        its device.json (manifest.json and manifest.sig untouched)."""
        root = self.artifact.root
        built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            if self.draft is None:
                files = {key.plan_name: plan, TIMING_CACHE: timing}
                record = {key.plan_name: engine_record(key, flavor, built)}
                record_device_files(root, files, record, device_key=self.device_key)
            else:
                with edit_artifact(self.draft) as draft:
                    draft.write(key.plan_name, lambda tmp: tmp.write_bytes(plan))
                    draft.write(TIMING_CACHE, lambda tmp: tmp.write_bytes(timing))
                    draft.manifest = with_engine_record(draft.manifest, key, flavor, built)
        except OSError as e:
            raise BuildError(f"{root}: cannot write the engine into the artifact ({e})") from e
        if self.draft is not None:
            self.artifact = self.draft.artifact()
        else:  # hashed as it was recorded, moments ago: no signature to ask of it
            self.artifact = load_artifact(root, verify=False, trusted=())
        return self.artifact


def engine_from_onnx(
    artifact: Artifact | str | os.PathLike | ArtifactDraft, **options
) -> EngineBuild:
    """Function twin of :class:`EngineFromOnnx`: build (or reuse) the artifact's engine."""
    return EngineFromOnnx(artifact, **options)()


EngineLoader = Callable[[], EngineBuild]
