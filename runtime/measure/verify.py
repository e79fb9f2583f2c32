"""``verify``: does an artifact compute what its PyTorch reference computes, frame after frame?

Both sides generate the same streams (seed ``i`` -> label ``i mod num_classes``, the
runtime's noise ``frame_noise(i, 0, frame)``, Euler, no CFG) in lockstep, three runs at once:

- reference: torch (or a second artifact) generating on its own;
- local: the artifact fed the reference's exact inputs at every step (x_t, t, state, count):
  one step's own error, compared per step with the gates' ``v``/``state_out`` tolerances;
- free: the artifact generating on its own from the same noise: the accumulated drift,
  compared per frame (PSNR of the decoded uint8 frame, state error per layer).

On the first failing step (or NaN), the inputs of that step are kept and, against torch,
:func:`~pomexport.runtime.measure.layerwise.first_divergence` names the first layer that goes wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import ConfigError
from pomexport.export.artifact.gates import Gates, gates_for
from pomexport.runtime.generator import frame_noise
from pomexport.runtime.measure.compare import CompareResult, compare_outputs
from pomexport.runtime.measure.verify_report import (
    frame_record,
    settle,
    summarize,
    write_report,
)
from pomexport.runtime.sampler import time_schedule

logger = logging.getLogger(__name__)

__all__ = ["VerifyReport", "verify"]

Progress = Callable[[str], None]


class _Runner:
    """One backend generating ``batch`` streams with its own step I/O and ping-pong state."""

    def __init__(self, backend, labels: list[int]) -> None:
        cfg = backend.config
        self.backend, self.tokens = backend, cfg.tokens_per_frame
        self.io = backend.allocate(len(labels))
        self.io.label.copy_(torch.tensor(labels, dtype=torch.int64))
        shape = (cfg.depth, len(labels), cfg.state_width)
        dev = backend.device
        self.state = [torch.zeros(shape, device=dev), torch.zeros(shape, device=dev)]
        self.scratch = torch.zeros(shape, device=dev)
        self.count = torch.zeros(len(labels), device=dev)
        self.cur = 0

    @property
    def committed(self) -> torch.Tensor:
        return self.state[self.cur]

    def feeds(self, x: torch.Tensor, t: float) -> dict[str, np.ndarray]:
        """The step inputs this runner would feed at (x, t), as numpy (for layerwise)."""
        return {
            "x_t": x.float().cpu().numpy().copy(),
            "t": np.full(x.shape[0], t, dtype=np.float32),
            "label": self.io.label.cpu().numpy().copy(),
            "frame_index": self.io.frame_index.cpu().numpy().copy(),
            "state": self.committed.cpu().numpy().copy(),
            "count": self.count.cpu().numpy().copy(),
        }

    def step(self, x: torch.Tensor, t: float, commit: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluate at (x, t); a commit writes the other state buffer and advances the frame.

        Returns v (fp32) and state_out on the CPU, copies that later steps do not overwrite.
        """
        self.io.x_t.copy_(x.to(self.io.x_t.device, self.io.x_t.dtype))
        self.io.t.fill_(t)
        out = self.state[1 - self.cur] if commit else self.scratch
        self.backend.step(self.io, self.committed, self.count, out)
        v, state_out = self.io.v.float().cpu().clone(), out.cpu().clone()
        if commit:
            self.cur = 1 - self.cur
            self.count.add_(self.tokens)
            self.io.frame_index.add_(1)
        return v, state_out

    def load(self, state: torch.Tensor) -> None:
        """Read ``state`` (the reference's committed state) at the next step."""
        self.committed.copy_(state.to(self.committed.device))


@dataclass
class VerifyReport:
    """Everything ``verify`` measured; truthy when every gate passed."""

    summary: dict
    steps: list[dict]
    frames: list[dict]
    layerwise: dict | None = None
    paths: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.summary["passed"])

    @property
    def failures(self) -> list[str]:
        return list(self.summary["failures"])

    def to_dict(self) -> dict:
        return {
            "summary": self.summary,
            "layerwise": self.layerwise,
            "frames": self.frames,
            "steps": self.steps,
        }


@dataclass
class _Failure:
    """The first failure seen: where, why, and the inputs to replay for the layerwise search."""

    where: str
    reasons: list[str]
    feeds: dict[str, np.ndarray]


def _step_record(frame: int, step: int, t: float, result: CompareResult) -> dict:
    return {"frame": frame + 1, "step": step, "t": t, "passed": bool(result), **result.to_dict()}


class _Lockstep:
    """The three runs of the module docstring, advanced together one frame at a time."""

    def __init__(self, artifact_backend, reference_backend, seeds: int, gates: Gates) -> None:
        cfg = reference_backend.config
        labels = [i % cfg.num_classes for i in range(seeds)]
        self.ref = _Runner(reference_backend, labels)
        self.local = _Runner(artifact_backend, labels)
        self.free = _Runner(artifact_backend, labels)
        self.cfg, self.seeds, self.gates = cfg, seeds, gates
        self.tolerances = gates.step_tolerances()
        # The frame loop discards a commit's v (docs/design.md §3): it is measured, not gated.
        self.commit_tolerances = {k: v for k, v in self.tolerances.items() if k != "v"}
        self.steps: list[dict] = []
        self.frames: list[dict] = []
        self.failure: _Failure | None = None
        self._pending_feeds: dict[str, np.ndarray] = {}  # the newest frame's, until settled

    def _noise(self, frame: int) -> torch.Tensor:
        shape = (self.cfg.in_channels, self.cfg.input_size, self.cfg.input_size)
        return torch.from_numpy(
            np.stack([frame_noise(i, 0, frame, shape) for i in range(self.seeds)])
        )

    def _evaluate(self, frame: int, step: int, xs, t: float, commit: bool):
        x_ref, x_free = xs
        feeds = self.ref.feeds(x_ref, t) if self.failure is None else {}
        self.local.load(self.ref.committed)
        v_ref, s_ref = self.ref.step(x_ref, t, commit)
        v_loc, s_loc = self.local.step(x_ref, t, commit)
        v_free, s_free = self.free.step(x_free, t, commit)
        tolerances = self.commit_tolerances if commit else self.tolerances
        result = compare_outputs(
            {"v": v_loc, "state_out": s_loc}, {"v": v_ref, "state_out": s_ref}, tolerances
        )
        self.steps.append(_step_record(frame, step, t, result))
        if not result and self.failure is None:
            where = f"frame {frame + 1}, step {step} (t={t:.4f})"
            self.failure = _Failure(where, result.failures, feeds)
        return (v_ref, v_free), (s_ref, s_free)

    def frame(self, frame: int, times: list[float]) -> None:
        """Denoise and commit frame ``frame`` (0-based) on all three runs."""
        x_ref = self._noise(frame)
        x_free = x_ref.clone()
        for step, (t, t_next) in enumerate(zip(times[:-1], times[1:], strict=True)):
            (v_ref, v_free), _ = self._evaluate(frame, step, (x_ref, x_free), t, False)
            x_ref = x_ref + (t_next - t) * v_ref
            x_free = x_free + (t_next - t) * v_free
        free_feeds = self.free.feeds(x_free, 0.0) if self.failure is None else {}
        _, (s_ref, s_free) = self._evaluate(frame, len(times) - 1, (x_ref, x_free), 0.0, True)
        record = frame_record(frame, x_free, x_ref, s_free, s_ref, self.gates)
        if self.frames:
            self._settle(self.frames[-1], record)
        self.frames.append(record)
        self._pending_feeds = free_feeds
        if record["failures"]:  # a NaN: no need to wait for the next frame
            self._note(record)

    def finish(self) -> None:
        """Settle the last frame: a stream under the PSNR gate there has no next frame."""
        if self.frames:
            self._settle(self.frames[-1], None)

    def _settle(self, record: dict, following: dict | None) -> None:
        settle(record, following, self.gates)
        if record["passed"] is False:
            self._note(record)

    def _note(self, record: dict) -> None:
        """Keep the first failing frame and its inputs for the layerwise search."""
        if self.failure is None:
            where = f"frame {record['frame']} (free-running)"
            self.failure = _Failure(where, record["failures"], self._pending_feeds)


def _reference_backend(artifact, against: str, reference_model):
    """torch on the artifact's model (or ``reference_model``), or a second artifact on ORT."""
    if against != "torch":
        from pomexport.runtime.ort_backend import OrtBackend

        return OrtBackend(against, backend="ort")
    from pomexport.runtime.torch_backend import TorchBackend

    return TorchBackend(_reference_model(artifact, reference_model), device="cpu")


def _reference_model(artifact, reference_model):
    from pomexport.models.pom_dit import PoMDiT
    from pomexport.models.registry import BUNDLED, bundled_path, load_model

    if isinstance(reference_model, PoMDiT):
        model = reference_model
    else:
        name = str(reference_model or artifact.model_name)
        if name == "custom":
            raise ConfigError(
                f"{artifact.root} was exported from a model object, not a named model: "
                "pass the reference with --model NAME_OR_WEIGHTS"
            )
        if name in BUNDLED and not bundled_path(name).is_file():
            raise ConfigError(f"the bundled model {name!r} is not installed ({bundled_path(name)})")
        model = load_model(name)
    if model.cfg != artifact.config:
        raise ConfigError(f"the reference model's config differs from {artifact.root}'s")
    return model.float().eval()


def _layerwise(artifact, reference, failure: _Failure | None, gates: Gates) -> dict | None:
    if failure is None:
        return None
    base = {"at": failure.where, "reasons": failure.reasons}
    from pomexport.runtime.torch_backend import TorchBackend

    if not isinstance(reference, TorchBackend):
        return {**base, "skipped": "layerwise comparison needs --against torch"}
    if "portable" not in artifact.flavors:
        return {**base, "skipped": "layerwise comparison needs the portable flavor (model.onnx)"}
    from pomexport.runtime.measure.layerwise import first_divergence

    result = first_divergence(
        reference.model, artifact.onnx_path("portable"), failure.feeds, gates.layer_rel
    )
    return {**base, "layer_rel": gates.layer_rel, **result.to_dict()}


def verify(
    artifact,
    against: str | os.PathLike = "torch",
    frames: int = 16,
    steps: int = 4,
    seeds: int = 1,
    report_dir: str | os.PathLike | None = None,
    reference_model=None,
    backend: str = "ort",
    progress: Progress | None = None,
) -> VerifyReport:
    """Run ``artifact`` (a path or loaded Artifact) against torch or a second artifact.

    ``reference_model``: the torch reference (PoMDiT, name or weights path; default the
    manifest's model name). Writes ``verify.json``, ``drift.json`` and ``drift.png`` into
    ``report_dir`` when given. The report is truthy when every gate passed.
    """
    from pomexport.export.artifact import Artifact, load_artifact
    from pomexport.runtime.ort_backend import OrtBackend

    if frames < 1 or steps < 1 or seeds < 1:
        raise ConfigError(f"frames, steps and seeds must be >= 1, got {frames}, {steps}, {seeds}")
    artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    gates, source = gates_for(artifact.manifest)
    reference = _reference_backend(artifact, str(against), reference_model)
    run = _Lockstep(OrtBackend(artifact, backend=backend), reference, seeds, gates)
    times = [float(t) for t in time_schedule(steps)]
    progress = progress or logger.info
    for f in range(frames):
        run.frame(f, times)
        if (f + 1) % max(1, frames // 8) == 0 or f + 1 == frames:
            progress(f"frame {f + 1}/{frames}: PSNR {run.frames[-1]['psnr_db']:.2f} dB")
    run.finish()
    layerwise = _layerwise(artifact, reference, run.failure, gates)
    settings = {"against": str(against), "frames": frames, "steps": steps, "seeds": seeds}
    summary = summarize(artifact, gates, source, settings, run.steps, run.frames, layerwise)
    report = VerifyReport(summary, run.steps, run.frames, layerwise)
    if report_dir is not None:
        report.paths = write_report(report, Path(report_dir))
    return report
