"""First contact with a real TensorRT: does it take our files, and do its frames match?

On a machine with TensorRT (10.x or 11.x, with its Python bindings) and a GPU, in about a
minute: load the PolyMixer plugin library and check what it registered (one creator, PolyMixer
v1 in namespace ``pomexport``, no (name, version, namespace) twice in the registry); export the
bundled model at fp16 with both ONNX flavors; build an engine from each flavor (TF32 off, as
every build path); generate the same clip with each engine and with ONNX Runtime on the CPU;
compare them frame by frame (PSNR of the decoded uint8 frames against the artifact's gate).
``scripts/trt_first_contact.sh`` runs it and prints :attr:`FirstContactReport.summary`.

    report = first_contact("build/plugin/libpomexport_plugins.so", "build/first-contact")
    print(report.summary)                          # one line; bool(report): every check passed
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pomexport.export.artifact.contract import PLUGIN_NAME, PLUGIN_NAMESPACE, PLUGIN_VERSION

logger = logging.getLogger(__name__)

Creator = tuple[str, str, str]  # (name, version, namespace)
Progress = Callable[[str], None]
FLAVOR_ORDER = ("plugin", "portable")


@dataclass(frozen=True)
class CreatorCheck:
    """What loading the plugin library registered, and what is wrong with it (empty: fine)."""

    added: tuple[Creator, ...]
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return not self.problems


def check_creators(before: Sequence[Creator], after: Sequence[Creator]) -> CreatorCheck:
    """The registry's creators before and after loading the library: it must add exactly one,
    PolyMixer v1 in namespace ``pomexport``, and the registry may hold no creator twice (TensorRT
    refuses to load a library whose (name, version, namespace) is already registered)."""
    added = tuple(sorted((Counter(after) - Counter(before)).elements()))
    problems = []
    twice = sorted(c for c, n in Counter(after).items() if n > 1)
    if twice:
        problems.append(f"registered more than once: {twice}")
    expected = (PLUGIN_NAME, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    if added != (expected,):
        problems.append(f"the library registered {list(added)}, expected [{expected}]")
    return CreatorCheck(added, tuple(problems))


def frame_psnr(clip: np.ndarray, reference: np.ndarray) -> list[float]:
    """PSNR (dB) of each decoded uint8 frame: clips (B, F, C, H, W) in about [-1, 1]."""
    from pomexport.runtime.measure.compare import psnr, to_uint8

    if clip.shape != reference.shape:
        raise ValueError(f"clip shapes differ: {clip.shape} vs {reference.shape}")
    return [
        psnr(to_uint8(clip[:, f]), to_uint8(reference[:, f])) for f in range(reference.shape[1])
    ]


@dataclass
class FlavorResult:
    """One engine: the flavor it was built from, how long the build took, its frames' PSNR."""

    flavor: str
    build_s: float = math.nan
    psnr_db: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def psnr_min_db(self) -> float:
        values = self.psnr_db or [math.nan]
        return math.nan if any(math.isnan(v) for v in values) else min(values)


@dataclass
class FirstContactReport:
    """Everything first contact found; truthy when every check passed."""

    tensorrt: str
    gpu: str
    creators: CreatorCheck
    flavors: list[FlavorResult]
    gate_db: float
    frames: int

    def __bool__(self) -> bool:
        flavors_ok = all(
            f.error is None and f.psnr_min_db >= self.gate_db for f in self.flavors
        ) and {f.flavor for f in self.flavors} == set(FLAVOR_ORDER)
        return bool(self.creators) and flavors_ok

    @property
    def summary(self) -> str:
        """One line: verdict, TensorRT and GPU, the plugin check, each flavor's result."""
        plugin = "plugin OK" if self.creators else "plugin: " + "; ".join(self.creators.problems)
        parts = [f"TensorRT {self.tensorrt} on {self.gpu}", plugin]
        for result in self.flavors:
            if result.error is not None:
                parts.append(f"{result.flavor}: FAILED ({result.error})")
            else:
                parts.append(
                    f"{result.flavor}: built {result.build_s:.0f} s, {self.frames} frames, "
                    f"PSNR min {result.psnr_min_db:.1f} dB vs ONNX Runtime CPU"
                )
        verdict = "PASS" if self else "FAIL"
        return f"first contact {verdict}: " + " | ".join(parts) + f" (gate {self.gate_db:g} dB)"


def _registry_creators() -> list[Creator]:
    from pomexport.export.engine.builder import import_tensorrt, registered_creators

    return registered_creators(import_tensorrt().get_plugin_registry())


def load_and_check_plugin(library: str | os.PathLike) -> CreatorCheck:
    """Load the plugin library as the builder does (hash-checked, once per process) and check
    what it registered."""
    from pomexport.export.artifact.paths import sha256_file
    from pomexport.export.engine.builder import load_plugin_library

    before = _registry_creators()
    load_plugin_library(library, sha256_file(library))
    return check_creators(before, _registry_creators())


def _clip(backend, frames: int, steps: int) -> np.ndarray:
    from pomexport.runtime.api import generate

    return generate(backend, labels=[0, 1], frames=frames, steps=steps, cfg_scale=2.0).numpy()


def _engine_clip(artifact, flavor: str, plugin, frames: int, steps: int):
    """(build seconds, clip) of an engine built from ``flavor`` of ``artifact``."""
    from pomexport.export.engine.builder import EngineFromOnnx
    from pomexport.runtime.trt_backend import TrtBackend

    start = time.perf_counter()
    built = EngineFromOnnx(artifact, flavor=flavor, plugin=plugin)()
    seconds = time.perf_counter() - start
    return seconds, _clip(TrtBackend(lambda: built), frames, steps)


def first_contact(
    library: str | os.PathLike,
    out: str | os.PathLike = "build/first-contact",
    frames: int = 16,
    steps: int = 8,
    progress: Progress | None = None,
) -> FirstContactReport:
    """Run the first-contact checks (module doc) with the plugin ``library``; files go to
    ``out`` (the fp16 artifact, one copy per flavor, their engines). Needs TensorRT and a GPU;
    a failing flavor is reported, not raised."""
    import torch

    from pomexport.export.api import export_model
    from pomexport.export.artifact.gates import gates_for
    from pomexport.export.artifact.paths import sha256_file
    from pomexport.export.engine.builder import import_tensorrt
    from pomexport.runtime.ort_backend import OrtBackend

    progress = progress or (lambda message: logger.info("%s", message))
    trt = import_tensorrt()
    library, out = Path(library), Path(out)
    progress(f"loading {library} into TensorRT's plugin registry")
    creators = load_and_check_plugin(library)
    progress(f"exporting the bundled model at fp16 (both flavors) into {out}")
    shutil.rmtree(out, ignore_errors=True)
    artifact = export_model(out_dir=out / "plugin", precision="fp16", flavor="both")
    shutil.copytree(artifact.root, out / "portable")
    gate = gates_for(artifact.manifest, "fp16")[0].psnr_min_db
    progress(f"ONNX Runtime CPU: {frames} frames (the reference)")
    reference = _clip(OrtBackend(artifact.root, backend="ort"), frames, steps)
    results = []
    for flavor in FLAVOR_ORDER:
        progress(f"TensorRT: building the {flavor} flavor's engine and generating {frames} frames")
        plugin = (library, sha256_file(library))
        try:
            seconds, clip = _engine_clip(out / flavor, flavor, plugin, frames, steps)
            results.append(FlavorResult(flavor, seconds, frame_psnr(clip, reference)))
        except Exception as e:  # reported in the summary: first contact must say what broke
            logger.exception("%s flavor failed", flavor)
            first_line = (str(e).splitlines() or [""])[0]
            results.append(FlavorResult(flavor, error=f"{type(e).__name__}: {first_line}"))
    gpu = torch.cuda.get_device_name(0)
    return FirstContactReport(trt.__version__, gpu, creators, results, gate, frames)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pomexport.runtime.measure.first_contact LIBRARY [--out DIR] [--frames N]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="libpomexport_plugins.so")
    parser.add_argument("--out", default="build/first-contact", help="work folder")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[first-contact] %(message)s")
    report = first_contact(args.library, args.out, args.frames, args.steps)
    print(report.summary)  # the one line the script's user reads
    return 0 if report else 1


if __name__ == "__main__":
    raise SystemExit(main())
