"""``pomexport build``: a model -> a deployable artifact directory (docs/design.md §6).

export (both flavors, precision baked into the graph) -> [TensorRT engine, on a machine with
TensorRT and a GPU]. Without TensorRT or a GPU, ``auto`` stops after the ONNX Runtime
artifact and says the engine will be built on the target; ``trt`` fails before exporting.

The artifact is written into one draft (``export/artifact/edit.py``), staged in a directory
beside ``out`` under one lock: every stage (export, int8, plugin library, engine) writes its
files into it, the manifest is written once (each file hashed once), then signed, and the
directory renamed into place, so ``out`` is never a half-written artifact: it is the old one
or the new one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pomexport.errors import BuildError, ConfigError
from pomexport.export.artifact.layout import PRECISIONS
from pomexport.export.artifact.options import DEFAULT_BATCH
from pomexport.export.engine.target import tensorrt_missing

if TYPE_CHECKING:
    from pomexport.calibration.api import CalibrationOptions
    from pomexport.export.artifact import Artifact, ArtifactDraft
    from pomexport.models.pom_dit import PoMDiT

logger = logging.getLogger(__name__)

__all__ = [
    "BUILD_BACKENDS",
    "PRECISIONS",
    "BuildResult",
    "build",
    "build_decoder_engines",
    "build_engine",
    "calibrate",
]
BUILD_BACKENDS = ("auto", "trt", "ort")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    """What a build produced: the verified artifact, the target it was built for, and a
    one-paragraph summary for the user (what was built, what happens on the target)."""

    artifact: Artifact
    backend: str  # "trt" | "ort"
    summary: str


def build_engine(
    artifact: Artifact | ArtifactDraft,
    progress: Progress | None = None,
    workspace_mb: int | None = None,
) -> Path:
    """Build the TensorRT engine of ``artifact`` into ``<artifact>/engines/`` and return it
    (into a build's draft when given one: its owner commits).

    Strongly typed network from the precision-baked ONNX (plugin flavor when the artifact
    carries a verified plugin library), profiles from the artifact's batch range, timing
    cache beside it, ``workspace_mb`` capping the builder's memory
    (:func:`pomexport.export.engine.builder.engine_from_onnx`).
    """
    reason = tensorrt_missing()
    if reason is not None:
        raise BuildError(f"TensorRT is not installed or usable here: {reason}")
    from pomexport.export.engine.builder import engine_from_onnx

    if progress is not None:
        progress("building the TensorRT engine (minutes; the timing cache makes rebuilds fast)")
    built = engine_from_onnx(artifact, workspace_mb=workspace_mb)
    if progress is not None:
        verb = "reused" if built.reused else f"built in {built.seconds:.0f} s"
        progress(f"TensorRT engine {built.path.name} ({built.flavor} flavor) {verb}")
    return built.path


def build_decoder_engines(
    draft: ArtifactDraft, progress: Progress | None = None, workspace_mb: int | None = None
) -> list[Path]:
    """Build the TensorRT engines of the draft's decoder stage (one per graph, strongly typed
    like the step's; ``export/engine/decoder_engine.py``), recorded in its decoder entry."""
    reason = tensorrt_missing()
    if reason is not None:
        raise BuildError(f"TensorRT is not installed or usable here: {reason}")
    from pomexport.export.engine.decoder_engine import decoder_engines_from_onnx

    engines = decoder_engines_from_onnx(draft, workspace_mb=workspace_mb, progress=progress)
    return [draft.artifact().path(e.plan_name) for e in engines]


def _target(backend: str) -> tuple[str, str]:
    """(target, reason) for a ``--backend`` value; BuildError for ``trt`` without TensorRT."""
    if backend not in BUILD_BACKENDS:
        raise ConfigError(f"backend must be one of {BUILD_BACKENDS}, got {backend!r}")
    if backend == "ort":
        return "ort", "requested"
    missing = tensorrt_missing()
    if backend == "trt":
        if missing is not None:
            raise BuildError(
                f"--backend trt: {missing}. Build the ONNX Runtime artifact with --backend ort "
                "(or auto) here and the engine on the target"
            )
        return "trt", "requested"
    if missing is not None:
        return "ort", missing
    return "trt", "TensorRT and a CUDA GPU are available"


def build(
    model: PoMDiT | str | os.PathLike | None = None,
    out: str | os.PathLike = "build/artifact",
    precision: str = "fp16",
    backend: str = "auto",
    batch: tuple[int, int, int] = DEFAULT_BATCH,
    progress: Progress | None = None,
    calibration: CalibrationOptions | None = None,
    workspace_mb: int | None = None,
    plugin_library: str | os.PathLike | None = None,
    sign_key: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
) -> BuildResult:
    """Export ``model`` (default: the bundled model) with both flavors into ``out``, then
    build the TensorRT engine when ``backend`` is ``trt`` (or ``auto`` and TensorRT + a GPU
    are here). Returns the loaded artifact: one draft through every stage, its manifest
    written once (each file hashed once), then signed, then swapped into place.

    ``int8`` exports fp32 and calibrates it on the model's own sampling trajectories
    (``calibration``: :class:`pomexport.calibration.CalibrationOptions`, default entropy).
    ``workspace_mb`` caps the TensorRT builder's workspace (Jetson); ``plugin_library``: the
    PolyMixer plugin library to ship in ``plugins/`` (engines are then built from the plugin
    flavor); ``sign_key``: an Ed25519 private key (``pomexport keygen``) signing the finished
    manifest (``manifest.sig``, export/artifact/signing.py); ``decoder``: a local diffusers
    ``save_pretrained`` folder (AutoencoderKL, AutoencoderTiny, AutoencoderKLWan) whose
    decoder joins the artifact under ``decoder/`` at the build's precision (int8 builds: fp16;
    ``export/decoder_stage.py``), checked against the model before any export."""
    from pomexport.export.artifact import load_artifact, new_artifact

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    progress = progress or (lambda message: logger.info("%s", message))
    target, why = _target(backend)
    _check_inputs(plugin_library, sign_key, out)  # before minutes of export
    source = _default_model() if model is None else model
    _check_decoder(source, decoder)
    stages = _Stages(source, tuple(batch), progress, calibration, workspace_mb, decoder)
    # One writer at a time per output directory; `out` is swapped in only when complete.
    with new_artifact(out, BuildError) as draft:
        stages.run(draft, precision, plugin_library, target == "trt")
        progress("hashing files and writing manifest.json")
        draft.commit()
        if sign_key is not None:  # last: the manifest is final
            from pomexport.export.artifact.signing import sign_artifact

            sign_artifact(draft.root, sign_key)
    # every file was hashed once, by the commit: a read-back asks no signature (signing.py)
    artifact = load_artifact(out, verify=False, trusted=())
    return BuildResult(artifact, target, _summary(artifact, target, why))


def _note_unsigned(out) -> None:
    """Keys configured here mean loaders that enforce them: say that this build is unsigned
    (a build is not refused for it; its loaders will)."""
    from pomexport.export.artifact.signing import configured_keys

    keys = configured_keys()
    if keys:
        logger.warning(
            "%s will be unsigned and %d trusted key(s) are configured here: loaders that "
            "enforce them will refuse it (sign it: pomexport build --sign KEY)",
            out,
            len(keys),
        )


def _default_model() -> str:
    """The bundled model's name (its registry imports torch: only when it is needed)."""
    from pomexport.models.registry import DEFAULT_MODEL

    return DEFAULT_MODEL


def _check_decoder(source, decoder) -> None:
    """A decoder folder that cannot decode this model's latents fails now, in one line."""
    if decoder is None:
        return
    from pomexport.export.api import resolve_model
    from pomexport.export.decoder_stage import check_decoder_source

    check_decoder_source(decoder, resolve_model(source)[0].cfg)


def _check_inputs(plugin_library, sign_key, out) -> None:
    """A bad plugin library or signing key fails now, not after minutes of export; an
    unsigned build where keys are configured is said now too."""
    if plugin_library is not None:
        from pomexport.export.engine.plugin_library import check_plugin_library

        check_plugin_library(plugin_library)
    if sign_key is not None:
        from pomexport.export.artifact.signing import load_private_key

        load_private_key(sign_key)
    else:
        _note_unsigned(out)


@dataclass(frozen=True)
class _Stages:
    """The stages of one build, each writing into the build's draft."""

    source: object
    batch: tuple[int, int, int]
    progress: Progress
    calibration: CalibrationOptions | None
    workspace_mb: int | None
    decoder: str | os.PathLike | None = None

    def run(self, draft: ArtifactDraft, precision: str, plugin_library, engine: bool) -> None:
        """export -> [int8] -> [decoder] -> [plugin library] -> [TensorRT engine, and the
        decoder's], nothing committed."""
        from pomexport.export.api import export_model

        exported = "fp32" if precision == "int8" else precision
        export_model(self.source, draft, exported, "both", batch=self.batch, progress=self.progress)
        if precision == "int8":
            from pomexport.calibration.api import quantize_artifact

            quantize_artifact(draft, self.source, self.calibration, self.progress)
        if self.decoder is not None:
            from pomexport.export.decoder_stage import DECODER_PRECISION, add_decoder
            from pomexport.models.config import PoMDiTConfig

            cfg = PoMDiTConfig.from_dict(draft.manifest["model"]["config"])
            add_decoder(draft, self.decoder, DECODER_PRECISION[precision], cfg, self.progress)
        if plugin_library is not None:
            from pomexport.export.engine.plugin_library import add_plugin_library

            add_plugin_library(draft, plugin_library)
        if engine:
            build_engine(draft, self.progress, self.workspace_mb)
        if engine and self.decoder is not None:
            build_decoder_engines(draft, self.progress, self.workspace_mb)


def _summary(artifact: Artifact, target: str, why: str) -> str:
    built = (
        f"built {artifact.root} ({artifact.model_name}, {artifact.precision}, "
        f"flavors: {', '.join(artifact.flavors)}, batch {'..'.join(map(str, artifact.batch[::2]))})"
    )
    decoder = artifact.decoder
    if decoder is not None:
        built += f" with its {decoder.source_class} decoder ({decoder.kind}, {decoder.precision})"
    if target == "trt":
        engines = "engines" if decoder is not None else "engine"
        return f"{built} and its TensorRT {engines} ({why})"
    return (
        f"{built} for ONNX Runtime; {why}, so the TensorRT engine will be built on the "
        f"target (`pomexport build --backend trt` there). Run it here with "
        f"`pomexport generate {artifact.root}`"
    )


def calibrate(
    model="pom-dit-video-tiny",
    out: str | os.PathLike = "build/int8",
    options: CalibrationOptions | None = None,
    batch: tuple[int, int, int] = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Artifact:
    """Export ``model`` (fp32, both flavors) and calibrate it into the int8 artifact ``out``.

    ``pomexport build --precision int8`` with calibration options: built in a temporary
    directory beside ``out`` and renamed into place when complete.
    """
    from pomexport.calibration.api import CalibrationOptions
    from pomexport.export.api import resolve_model

    options = options or CalibrationOptions()
    options.capture.resolve_labels(resolve_model(model)[0].cfg)  # fail before exporting
    result = build(model, out, "int8", "ort", batch, progress, calibration=options)
    return result.artifact
