"""``export_model``: a PoM-DiT -> an artifact directory (docs/design.md §3, §4, §6).

trace the step graph (fp32, plugin flavor)
-> fp16: record a sampling trajectory, run the overflow check, apply the fp16 pass
-> write model.onnx (+ the PolyMixer function) and/or model.plugin.onnx, check them
-> write manifest.json last (once); return the loaded Artifact

All of it is written through an artifact draft (``export/artifact/edit.py``): alone, into a
staging directory beside ``out`` renamed into place when complete (an interrupted export
leaves ``out`` as it was, and the next one clears what it left); inside ``pomexport build``,
into the build's draft, which the build commits once after its later stages.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir

from pomexport.errors import ConfigError, ExportError
from pomexport.export.artifact import (
    FLAVOR_FILES,
    Artifact,
    ArtifactDraft,
    build_manifest,
    load_artifact,
    new_artifact,
)
from pomexport.export.artifact.options import DEFAULT_BATCH, check_batch
from pomexport.export.onnx_files import save_onnx
from pomexport.models.pom_dit import PoMDiT
from pomexport.models.registry import BUNDLED, DEFAULT_MODEL, bundled_path, load_model

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
FLAVOR_CHOICES = {"portable": ("portable",), "plugin": ("plugin",), "both": ("portable", "plugin")}
DEFAULT_OPSET = 18
MAX_OPSET = 23  # the newest default-domain opset the decomposition was checked against

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """What to export; validated on construction (ConfigError on bad values).

    ``range_frames``/``range_steps``/``range_batch`` size the sampling trajectory that the
    fp16 overflow check runs on.
    """

    precision: str = "fp32"
    flavor: str = "portable"
    opset: int = DEFAULT_OPSET
    batch: tuple[int, int, int] = DEFAULT_BATCH
    range_frames: int = 2
    range_steps: int = 3
    range_batch: int = 2

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.flavor not in FLAVOR_CHOICES:
            raise ConfigError(f"flavor must be one of {tuple(FLAVOR_CHOICES)}, got {self.flavor!r}")
        if not DEFAULT_OPSET <= self.opset <= MAX_OPSET:
            raise ConfigError(f"opset must be in {DEFAULT_OPSET}..{MAX_OPSET}, got {self.opset}")
        check_batch(self.batch)

    @property
    def flavors(self) -> tuple[str, ...]:
        return FLAVOR_CHOICES[self.flavor]


def resolve_model(model_or_name: PoMDiT | str | os.PathLike) -> tuple[PoMDiT, str]:
    """A PoMDiT and the name recorded in the manifest."""
    if isinstance(model_or_name, PoMDiT):
        return model_or_name.eval(), "custom"
    name = str(model_or_name)
    if name in BUNDLED and not bundled_path(name).is_file():
        raise ConfigError(
            f"the bundled model {name!r} is not installed yet ({bundled_path(name)} is "
            "missing); pass a preset such as 'tiny' or a weights file"
        )
    model = load_model(name)
    # Presets contain "/" (XL/2): only a weights file is named by its stem.
    return model, Path(name).stem if Path(name).is_file() else name


def _fp16(graph: ir.Model, feeds: list, progress: Progress) -> tuple[ir.Model, list[str]]:
    """The overflow check on ``feeds``, then the fp16 pass on ``graph`` (in place)."""
    from pomexport.export.fp16 import to_fp16
    from pomexport.export.ranges import overflowing, tensor_absmax

    progress(f"running the fp32 graph on {len(feeds)} trajectory steps (overflow check)")
    keep = overflowing(tensor_absmax(graph, feeds))
    progress(f"converting to fp16 ({len(keep)} tensors kept in fp32 by the overflow check)")
    return to_fp16(graph, keep), sorted(keep)


def _write_flavors(graph: ir.Model, out: Path | ArtifactDraft, flavors, progress: Progress) -> None:
    from pomexport.export.flavors import add_function, to_plugin_flavor

    # Portable first: when the weights go external, the plugin file shares model.onnx.data.
    for flavor in ("portable", "plugin"):
        if flavor not in flavors:
            continue
        if flavor == "portable":
            add_function(graph)
        else:
            to_plugin_flavor(graph)
        path = out / FLAVOR_FILES[flavor]
        progress(f"writing {path.name}")
        save_onnx(graph, path)
        progress(f"checking {path.name} (onnx.checker, full check)")
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as e:
            raise ExportError(f"{path.name} fails the ONNX checker: {e}") from e


def export_model(
    model_or_name: PoMDiT | str | os.PathLike = DEFAULT_MODEL,
    out_dir: str | os.PathLike | ArtifactDraft = "artifact",
    precision: str = "fp32",
    flavor: str = "portable",
    opset: int = DEFAULT_OPSET,
    batch: tuple[int, int, int] = DEFAULT_BATCH,
    progress: Progress | None = None,
    **options,
) -> Artifact | ArtifactDraft:
    """Export ``PoMDiT.step`` to an artifact directory and return it, loaded and checked.

    ``model_or_name``: a PoMDiT, the bundled model name, a preset (random weights) or a
    weights path. ``batch`` = (min, opt, max) of the dynamic batch axis (recorded in the
    manifest for TensorRT profiles). Extra keyword ``options`` go to :class:`ExportOptions`.
    ``out_dir`` may be the :class:`ArtifactDraft` of a build: the export is written into it
    and the draft returned, uncommitted (its owner commits once, after its later stages).
    """
    from pomexport.export.schema import register_schema
    from pomexport.export.step_graph import export_step

    opts = ExportOptions(precision, flavor, opset, tuple(batch), **options)
    progress = progress or (lambda message: log.info("%s", message))
    model, name = resolve_model(model_or_name)
    register_schema()
    with new_artifact(out_dir, ExportError) as draft:
        progress(f"tracing the step graph of {name} (opset {opts.opset})")
        graph = export_step(model, opts.opset, opts.batch)
        gc.collect()  # the exporter's program (cyclic) holds a second copy of the weights
        draft.manifest = _manifest(model.cfg, name, opts)
        feeds = _trajectory(model, opts, progress) if opts.precision == "fp16" else None
        del model  # the graph holds the weights now (frees GBs when we loaded the model)
        if feeds is not None:
            graph, kept = _fp16(graph, feeds, progress)
            gc.collect()  # IR graphs are cyclic: free the fp32 weights they wrap before writing
            draft.manifest["fp16_kept_fp32"] = kept
        _write_flavors(graph, draft, opts.flavors, progress)
    if isinstance(out_dir, ArtifactDraft):
        return out_dir
    # written and hashed by this call, moments ago: no signature to ask of it (signing.py)
    return load_artifact(out_dir, verify=False, trusted=())


def _manifest(cfg, name: str, opts: ExportOptions) -> dict:
    """The export's manifest (without files), with verify's tolerances per precision."""
    from pomexport.export.artifact.gates import default_gates_entry

    flavors, batch = list(opts.flavors), opts.batch
    gates = default_gates_entry()
    return build_manifest(cfg, name, opts.precision, flavors, opts.opset, batch, gates=gates)


def _trajectory(model: PoMDiT, opts: ExportOptions, progress: Progress) -> list:
    """The sampling trajectory the fp16 overflow check runs the fp32 graph on."""
    from pomexport.export.trajectory import record_trajectory

    progress("recording a sampling trajectory for the fp16 overflow check")
    return record_trajectory(model, opts.range_frames, opts.range_steps, opts.range_batch)
