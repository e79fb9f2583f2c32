"""TensorRT engines of an artifact's decoder stage (issue 21; docs/design.md §4, §6.2).

One engine per decoder graph (``image``: ``decode``; ``wan-stream``: ``first`` and
``next``), built like the step's (``builder.py``): strongly typed (every type from the ONNX,
fp16 with its fp32 islands as exported), TF32 off, no precision flag, the workspace capped.
The graphs have static shapes at batch 1, so no optimization profile is needed and the key's
profile is empty. Plans and records:

    decoder/<role>-<gpu>-sm<NN>-trt<major>.<minor>.<patch>.plan
    manifest "decoder": {..., "engines": {<plan name>: <engine record>}}
    (or device.json's "engines", for plans built on the device: the bundle's build.sh)

The records are the step engine's (``export/artifact/engines.py::engine_record``: the
:class:`EngineKey` with the graph's sha256, TensorRT version, GPU name and SM) in the
decoder's own entry, never in the manifest's ``engines`` table, which names the step's engine
(``runtime/loading.py`` picks TensorRT by it). Built in a build's draft only (``pomexport
build MODEL --decoder DIR --backend trt``): its one manifest write lists and hashes them.

:func:`decoder_engine_plan` says what would be built without TensorRT or a GPU (names and
keys); :class:`DecoderEnginesFromOnnx` builds (TensorRT imported lazily: without it, the
BuildError "TensorRT is not installed ...").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pomexport.errors import ArtifactError, BuildError, ConfigError
from pomexport.export.artifact import Artifact, ArtifactDraft, edit_artifact
from pomexport.export.artifact.decoder import KEY
from pomexport.export.artifact.engines import EngineKey, engine_record, gpu_slug, trt_release
from pomexport.export.engine.builder import (
    create_network,
    gpu_target,
    parse_onnx,
    set_timing_cache,
)
from pomexport.export.engine.target import import_tensorrt

logger = logging.getLogger(__name__)

ENGINE_FLAVOR = "portable"  # decoder graphs have one flavor: standard ops, no plugin


@dataclass(frozen=True)
class DecoderEngine:
    """One decoder graph's engine: where it goes and the key it is built under."""

    role: str
    onnx: str  # decoder/<role>.onnx
    plan_name: str  # decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan
    key: EngineKey


def decoder_engine_name(role: str, key: EngineKey) -> str:
    """``decoder/<role>-<gpu>-sm<NN>-trt<ver>.plan`` (beside its graph, never in engines/)."""
    return (
        f"decoder/{role}-{gpu_slug(key.gpu_name)}-sm{key.sm}-trt{trt_release(key.trt_version)}.plan"
    )


def decoder_engine_plan(
    artifact: Artifact, trt_version: str, gpu_name: str, sm: int
) -> list[DecoderEngine]:
    """The engines a build for (TensorRT ``trt_version``, GPU ``gpu_name`` of SM ``sm``)
    makes for ``artifact``'s decoder stage, by role; ArtifactError without one."""
    spec = artifact.decoder
    if spec is None:
        raise ArtifactError(f"{artifact.root} has no decoder stage (build --decoder DIR)")
    engines = []
    for role, onnx_name in sorted(spec.files.items()):
        sha = artifact.files[onnx_name]["sha256"]
        key = EngineKey.create(sha, trt_version, gpu_name, sm, {})  # static shapes
        engines.append(DecoderEngine(role, onnx_name, decoder_engine_name(role, key), key))
    return engines


def cached_decoder_engine(artifact: Artifact, engine: DecoderEngine) -> bool:
    """Whether the artifact lists ``engine``'s plan (in manifest.json, or in its verified
    device.json: ``export/artifact/device.py`` adds that record's decoder plans to the decoder
    entry's ``engines``) with a record of ``engine.key``: the same graph sha256, TensorRT
    release (major.minor.patch: build.sh records trtexec's, which has no build number), GPU,
    SM and the empty profile, as the C++ runtime matches (``src/decoder_engines.cpp``)."""
    records = (artifact.manifest.get(KEY) or {}).get("engines", {})
    record = records.get(engine.plan_name)
    key = record.get("key") if isinstance(record, dict) else None
    if engine.plan_name not in artifact.files or not isinstance(key, dict):
        return False
    want = engine.key
    try:
        return (
            key.get("onnx_sha256") == want.onnx_sha256
            and trt_release(str(key.get("trt_version"))) == trt_release(want.trt_version)
            and gpu_slug(str(key.get("gpu_name"))) == gpu_slug(want.gpu_name)
            and key.get("sm") == want.sm
            and key.get("profile") == []
        )
    except ArtifactError:  # a version or GPU name no plan could be named after
        return False


class DecoderEnginesFromOnnx:
    """Callable builder: ``DecoderEnginesFromOnnx(draft, ...)()`` -> the engines built or
    reused, by role, recorded in ``draft``'s decoder entry (its owner commits the draft).

    ``workspace_mb``: cap of the builder's workspace pool (None: TensorRT's default).
    """

    def __init__(
        self,
        draft: ArtifactDraft,
        *,
        workspace_mb: int | None = None,
        device: int = 0,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if not isinstance(draft, ArtifactDraft):
            raise ConfigError("decoder engines are built into a build's draft (pomexport build)")
        if workspace_mb is not None and workspace_mb < 1:
            raise ConfigError(f"--workspace-mb must be >= 1, got {workspace_mb}")
        self.draft, self.workspace_mb, self.device = draft, workspace_mb, device
        self.progress = progress or (lambda message: logger.info("%s", message))

    def __call__(self) -> list[DecoderEngine]:
        trt = import_tensorrt()  # BuildError "TensorRT is not installed ..." without it
        target = gpu_target(self.device)
        artifact = self.draft.artifact()
        engines = decoder_engine_plan(artifact, trt.__version__, target.name, target.sm)
        for engine in engines:
            if cached_decoder_engine(artifact, engine):
                continue
            self.progress(f"building the decoder's {engine.role} engine ({engine.plan_name})")
            plan = self._build(trt, artifact.path(engine.onnx), target.index)
            self._record(engine, plan)
        return engines

    def _build(self, trt, onnx_path, device: int) -> bytes:
        """The serialized plan of one decoder graph: strongly typed, TF32 off."""
        import torch

        from pomexport.export.engine.progress import trt_logger

        log = trt_logger()
        log.take_errors()
        with torch.cuda.device(device):
            builder = trt.Builder(log)
            network = create_network(trt, builder)
            parser = parse_onnx(trt, network, onnx_path, log)
            config = builder.create_builder_config()
            config.clear_flag(trt.BuilderFlag.TF32)  # fp32 tensors of the graph stay fp32
            if self.workspace_mb is not None:
                limit = self.workspace_mb << 20
                config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, limit)
            set_timing_cache(config, None)
            plan = builder.build_serialized_network(network, config)
            del parser  # the network's weights are the parser's until here
        if plan is None:
            errors = log.take_errors() or ["no error logged"]
            raise BuildError(f"TensorRT could not build {onnx_path.name}: " + "; ".join(errors))
        return bytes(plan)

    def _record(self, engine: DecoderEngine, plan: bytes) -> None:
        built = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with edit_artifact(self.draft) as draft:
            draft.write(engine.plan_name, lambda tmp: tmp.write_bytes(plan))
            entry = dict(draft.manifest[KEY])
            records = dict(entry.get("engines", {}))
            records[engine.plan_name] = engine_record(engine.key, ENGINE_FLAVOR, built)
            entry["engines"] = records
            draft.manifest[KEY] = entry


def decoder_engines_from_onnx(draft: ArtifactDraft, **options) -> list[DecoderEngine]:
    """Function twin of :class:`DecoderEnginesFromOnnx`."""
    return DecoderEnginesFromOnnx(draft, **options)()
