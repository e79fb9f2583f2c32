"""``soak``: generate one stream for a long time and watch memory, state finiteness and drift.

The tested run is the :class:`~pomexport.runtime.generator.VideoGenerator` users run (an
artifact on ONNX Runtime/TensorRT, or a model on torch). Beside it, an fp32 torch reference
follows the *same* clip: after every frame it commits the tested run's clean frame into its
own state (teacher forcing), so its state is the exact fp32 state of the frames the tested run
produced, and the difference measures what the tested run accumulates wrongly over time — not
the chaotic divergence of two free-running samplers. That costs one reference step per frame
(``steps + 1`` tested steps). For a model source on torch/CPU the reference computes the same
fp32 ops, so the drift reads 0 by construction; soak an artifact to measure export drift.

Every ``every`` frames a sample records: RSS of the process, device memory (CUDA), frames/s,
whether the committed state and the frame are finite, the state's largest magnitude and count,
the relative error of the committed state and of the commit velocity against the reference.
The RSS slope is a least-squares fit over the samples after the warm-up (first 10 % of the
frames, at least the first 2 samples).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from pomexport.errors import ConfigError, StateError
from pomexport.runtime.measure import rss as _rss

logger = logging.getLogger(__name__)

__all__ = ["SoakOptions", "SoakReport", "soak"]

Progress = Callable[[str], None]
WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class SoakOptions:
    """What to run: ``frames`` frames of one stream, a sample every ``every`` frames."""

    frames: int
    every: int = 100
    steps: int = 2
    cfg_scale: float = 1.0
    label: int = 1
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.frames < 2 or self.every < 1 or self.steps < 1:
            raise ConfigError(
                f"soak needs frames >= 2, every >= 1, steps >= 1; got {self.frames}, "
                f"{self.every}, {self.steps}"
            )


@dataclass
class SoakReport:
    """Samples and summary; truthy when the state stayed finite and nothing failed."""

    summary: dict
    samples: list[dict]
    paths: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.summary["passed"])

    def to_dict(self) -> dict:
        return {"summary": self.summary, "samples": self.samples}


class _Reference:
    """The fp32 torch model committing the tested run's frames into its own state."""

    def __init__(self, model, label: int) -> None:
        from pomexport.runtime.torch_backend import TorchBackend

        self.backend = TorchBackend(model.float(), device="cpu")
        cfg = self.backend.config
        self.io = self.backend.allocate(1)
        self.io.label.fill_(label)
        shape = (cfg.depth, 1, cfg.state_width)
        self.state, self.out = torch.zeros(shape), torch.zeros(shape)
        self.count = torch.zeros(1)
        self.tokens = cfg.tokens_per_frame

    def commit(self, latent: torch.Tensor) -> None:
        """Feed the clean frame at t = 0; its sums become the committed state."""
        self.io.x_t[0].copy_(latent.float().cpu())
        self.io.t.zero_()
        self.backend.step(self.io, self.state, self.count, self.out)
        self.state, self.out = self.out, self.state
        self.count.add_(self.tokens)
        self.io.frame_index.add_(1)


def _rel(actual: torch.Tensor, reference: torch.Tensor) -> float:
    actual, reference = actual.double().cpu(), reference.double().cpu()
    denom = reference.norm().item()
    return (actual - reference).norm().item() / denom if denom > 0 else math.nan


def _device_mib(device: torch.device) -> tuple[float | None, float | None]:
    if device.type != "cuda":
        return None, None
    allocated = torch.cuda.memory_allocated(device) / _rss.MIB
    return allocated, torch.cuda.max_memory_allocated(device) / _rss.MIB


def _sample(gen, ref: _Reference | None, frame, frames_done: int, clock: dict) -> dict:
    """One record of the tested generator's state after frame ``frames_done``."""
    state = gen.state.read[:, :1]
    now = time.perf_counter()
    fps = (frames_done - clock["frames"]) / max(now - clock["t"], 1e-9)
    clock.update(frames=frames_done, t=now)
    allocated, peak = _device_mib(gen.backend.device)
    record = {
        "frame": frames_done,
        "elapsed_s": now - clock["start"],
        "fps": fps,
        "rss_mib": _rss.current_rss() / _rss.MIB,
        "device_mib": allocated,
        "device_peak_mib": peak,
        "state_finite": bool(torch.isfinite(state).all().item()),
        "frame_finite": bool(torch.isfinite(frame.latent).all().item()),
        "state_max_abs": float(state.abs().max().item()),
        "count": float(gen.state.count[0].item()),
    }
    if ref is not None:
        record["state_rel"] = _rel(state, ref.state)
        record["v_rel"] = _rel(gen.io.v[:1].float(), ref.io.v.float())
    return record


def _load(source, options: SoakOptions, reference_model=None):
    """(tested backend, fp32 reference model or None, description of the source)."""
    from pomexport.runtime.loading import is_artifact, load_backend

    backend = load_backend(source, options.backend, options.device, seed=options.seed)
    if is_artifact(source):
        from pomexport.export.artifact import load_artifact
        from pomexport.runtime.measure.verify import _reference_model

        artifact = load_artifact(Path(source))
        reference = _reference_model(artifact, reference_model)
        return backend, reference, f"artifact {artifact.root}"
    from pomexport.models.registry import load_model

    if not isinstance(source, str | os.PathLike):
        return backend, source, f"model {getattr(source, 'cfg', type(source).__name__)}"
    return backend, load_model(source), f"model {source}"


def _run(gen, ref, options: SoakOptions, progress: Progress, checkpoint=None) -> list[dict]:
    samples: list[dict] = []
    start = time.perf_counter()
    clock = {"start": start, "t": start, "frames": 0}
    for done, frame in enumerate(gen.stream(options.frames), start=1):
        if ref is not None:
            ref.commit(frame.latent)
        if done == 1 or done % options.every == 0 or done == options.frames:
            samples.append(_sample(gen, ref, frame, done, clock))
            if not samples[-1]["state_finite"]:
                progress(f"frame {done}: the committed state is not finite; stopping")
                break
            if done % (options.every * 10) == 0:
                if checkpoint is not None:
                    checkpoint(samples)
                s = samples[-1]
                progress(
                    f"frame {done}/{options.frames}: {s['fps']:.1f} frames/s, RSS "
                    f"{s['rss_mib']:.1f} MiB, state rel err {s.get('state_rel', 0):.2e}"
                )
    return samples


def soak(
    source,
    options: SoakOptions,
    out: str | os.PathLike | None = None,
    progress: Progress | None = None,
    reference_model=None,
) -> SoakReport:
    """Generate ``options.frames`` frames of one stream from ``source`` (artifact directory,
    model name, weights path or PoMDiT), sampling every ``options.every`` frames.

    ``reference_model``: an artifact's fp32 torch reference (PoMDiT, name or weights path;
    default the manifest's model name, as for ``verify``: an artifact exported from a model
    object needs it). Writes ``soak.json`` and ``soak.png`` into ``out`` when given. The
    report is truthy when the state stayed finite throughout.
    """
    from pomexport.runtime.generator import VideoGenerator

    progress = progress or logger.info
    backend, model, described = _load(source, options, reference_model)
    gen = VideoGenerator(backend, slots=1, steps=options.steps, cfg_scale=options.cfg_scale)
    gen.start(0, label=options.label, seed=options.seed)
    ref = _Reference(model, options.label) if model is not None else None
    checkpoint = None if out is None else _checkpointer(Path(out))
    with torch.inference_mode():
        samples = _run(gen, ref, options, progress, checkpoint)
    summary = summarize(samples, options, described, backend.name, str(backend.device))
    # A stationary state (decay < 1) plateaus at about sum P / (1 - decay) per layer, where a
    # uniform one grows with every frame: the magnitude samples read against this.
    summary["decay"] = backend.config.decay
    report = SoakReport(summary, samples, {})
    if out is not None:
        report.paths = write_soak(report, Path(out))
    return report


def _checkpointer(out: Path) -> Callable[[list[dict]], None]:
    """Writes the samples so far to ``soak.partial.json``: a killed soak still has its data."""
    from pomexport.export.artifact.atomic import atomic_write

    def write(samples: list[dict]) -> None:
        text = json.dumps({"samples": samples}) + "\n"
        atomic_write(out / "soak.partial.json", lambda tmp: tmp.write_text(text))

    return write


def _slope(samples: list[dict], key: str) -> float | None:
    """Least-squares slope of ``key`` per frame (None: fewer than 2 points)."""
    points = [(s["frame"], s[key]) for s in samples if s.get(key) is not None]
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else None


def _after_warmup(samples: list[dict], frames: int) -> list[dict]:
    warm = max(int(WARMUP_FRACTION * frames), samples[min(1, len(samples) - 1)]["frame"])
    return [s for s in samples if s["frame"] >= warm]


def summarize(samples: list[dict], options: SoakOptions, source: str, backend: str, device: str):
    """The headline numbers: RSS slope after warm-up, finiteness, worst drift, speed."""
    steady = _after_warmup(samples, options.frames)
    slope = _slope(steady, "rss_mib")
    done = samples[-1]["frame"]
    finite = all(s["state_finite"] and s["frame_finite"] for s in samples)
    drift = [s["state_rel"] for s in samples if "state_rel" in s]
    v_drift = [s["v_rel"] for s in samples if "v_rel" in s]
    elapsed = samples[-1]["elapsed_s"]
    return {
        "source": source,
        "backend": backend,
        "device": device,
        "options": asdict(options),
        "frames_done": done,
        "passed": finite and done == options.frames,
        "state_finite_throughout": finite,
        "elapsed_s": elapsed,
        "frames_per_s": done / elapsed if elapsed > 0 else None,
        "warmup_until_frame": steady[0]["frame"] if steady else None,
        "rss_mib_first": samples[0]["rss_mib"],
        "rss_mib_after_warmup": steady[0]["rss_mib"] if steady else None,
        "rss_mib_last": samples[-1]["rss_mib"],
        "rss_slope_kib_per_1000_frames": None if slope is None else slope * 1024 * 1000,
        "device_slope_kib_per_1000_frames": _scaled(_slope(steady, "device_mib")),
        "state_rel_max": max(drift) if drift else None,
        "state_rel_last": drift[-1] if drift else None,
        "v_rel_max": max(v_drift) if v_drift else None,
        "state_max_abs_last": samples[-1]["state_max_abs"],
        "machine": _rss.machine_info(),
    }


def _scaled(slope: float | None) -> float | None:
    return None if slope is None else slope * 1024 * 1000


def write_soak(report: SoakReport, out: Path) -> dict[str, str]:
    """``soak.json`` (summary + samples) and ``soak.png`` (RSS, drift, state magnitude)."""
    from pomexport.export.artifact.atomic import atomic_write
    from pomexport.runtime.measure.verify_report import jsonable

    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(report.to_dict()), indent=2) + "\n"
    atomic_write(out / "soak.json", lambda tmp: tmp.write_text(text))
    paths = {"json": str(out / "soak.json")}
    try:
        from pomexport.runtime.measure.soak_plot import plot_soak

        paths["png"] = str(plot_soak(report.samples, report.summary, out / "soak.png"))
    except ConfigError as e:  # matplotlib missing: the JSON still stands
        logger.warning("no soak.png: %s", e)
    return paths


def check_finite(report: SoakReport) -> None:
    """Raise StateError when the soak saw a non-finite state or frame."""
    if not report.summary["state_finite_throughout"]:
        bad = next(s for s in report.samples if not (s["state_finite"] and s["frame_finite"]))
        raise StateError(f"soak: non-finite state or frame at frame {bad['frame']}")
