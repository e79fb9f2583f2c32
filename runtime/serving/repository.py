"""``pomexport serve-repo``: write a Triton Inference Server model repository for an artifact.

The repository holds one Python-backend model, ``pomdit_stream``: one request returns the next
frame of one video stream. Triton's sequence batcher gives each stream (correlation ID) a
batch slot and batches the requests of different streams that arrive together; the model
maps sequences onto its :class:`~pomexport.runtime.generator.VideoGenerator`'s slots, so
such a batch is one batched step (:mod:`pomexport.runtime.serving.triton_model`).

Layout::

    REPO/pomdit_stream/config.pbtxt
    REPO/pomdit_stream/1/model.py        # a small template importing pomexport
    REPO/pomdit_stream/1/artifact/       # a verified copy of the artifact

With ``kind="KIND_GPU"`` the repository also holds the implicit-state step model and its BLS
frame loop (:mod:`pomexport.runtime.serving.gpu_repository`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

MODEL_NAME = "pomdit_stream"
STRATEGIES = ("direct", "oldest")

MODEL_PY = '''"""Triton Python-backend entry point, written by `pomexport serve-repo`."""

import triton_python_backend_utils as pb_utils

from pomexport.runtime.serving.triton_model import StreamModel


class TritonPythonModel(StreamModel):
    pb = pb_utils
'''


@dataclass(frozen=True)
class RepoOptions:
    """What ``serve-repo`` puts into the model's config (see :func:`write_repository`)."""

    max_streams: int = 8
    instances: int = 1
    idle_timeout_s: float = 60.0
    strategy: str = "oldest"
    max_queue_delay_us: int = 20000
    steps: int = 20
    cfg_scale: float = 1.0
    sampler: str = "euler"
    backend: str = "ort"
    kind: str = "KIND_CPU"
    threads: int = 0  # intra-op threads per instance (0: the backend's default)

    def check(self) -> None:
        """Refuse values Triton or the generator would reject later, with one clear message."""
        if self.max_streams < 1 or self.instances < 1:
            raise ConfigError("--max-streams and --instances must be >= 1")
        if self.idle_timeout_s <= 0:
            raise ConfigError(f"--idle-timeout-s must be > 0, got {self.idle_timeout_s}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown --strategy {self.strategy!r}; known: {STRATEGIES}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.kind not in ("KIND_CPU", "KIND_GPU"):
            raise ConfigError(f"unknown instance kind {self.kind!r}")


def _strategy(opts: RepoOptions) -> str:
    if opts.strategy == "direct":
        return (
            "  direct {\n"
            f"    max_queue_delay_microseconds: {opts.max_queue_delay_us}\n"
            "    minimum_slot_utilization: 0.0\n  }\n"
        )
    return (
        "  oldest {\n"
        f"    max_candidate_sequences: {opts.max_streams}\n"
        f"    preferred_batch_size: [ {opts.max_streams} ]\n"
        f"    max_queue_delay_microseconds: {opts.max_queue_delay_us}\n  }}\n"
    )


def _control(name: str, kind: str) -> str:
    if kind == "CONTROL_SEQUENCE_CORRID":
        body = f"{{ kind: {kind}, data_type: TYPE_UINT64 }}"
    else:
        body = f"{{ kind: {kind}, int32_false_true: [ 0, 1 ] }}"
    return f'    {{ name: "{name}", control [ {body} ] }}'


def _tensor(name: str, dtype: str, dims: list[int], optional: bool = False) -> str:
    extra = ", optional: true" if optional else ""
    return f'  {{ name: "{name}", data_type: {dtype}, dims: {dims}{extra} }}'


def _params(params: dict) -> str:
    return ",\n".join(
        f'  {{ key: "{k}", value: {{ string_value: "{v}" }} }}' for k, v in params.items()
    )


def model_config(opts: RepoOptions, in_channels: int, size: int) -> str:
    """The ``config.pbtxt`` text of the stream model."""
    controls = [
        ("START", "CONTROL_SEQUENCE_START"),
        ("END", "CONTROL_SEQUENCE_END"),
        ("READY", "CONTROL_SEQUENCE_READY"),
        ("CORRID", "CONTROL_SEQUENCE_CORRID"),
    ]
    inputs = [_tensor(n, "TYPE_INT64", [1], optional=True) for n in ("LABEL", "SEED", "STREAM")]
    outputs = [
        _tensor("LATENT", "TYPE_FP32", [in_channels, size, size]),
        _tensor("FRAME", "TYPE_UINT8", [size, size, in_channels]),
        _tensor("FRAME_INDEX", "TYPE_INT64", [1]),
    ]
    params = {
        "steps": opts.steps,
        "cfg_scale": opts.cfg_scale,
        "sampler": opts.sampler,
        "backend": opts.backend,
        "idle_timeout_s": opts.idle_timeout_s,
        "threads": opts.threads,
    }
    param_lines = _params(params)
    idle_us = int(opts.idle_timeout_s * 1e6)
    return (
        f'name: "{MODEL_NAME}"\nbackend: "python"\nmax_batch_size: {opts.max_streams}\n'
        f"sequence_batching {{\n  max_sequence_idle_microseconds: {idle_us}\n"
        + _strategy(opts)
        + "  control_input [\n"
        + ",\n".join(_control(n, k) for n, k in controls)
        + "\n  ]\n}\n"
        + "input [\n"
        + ",\n".join(inputs)
        + "\n]\noutput [\n"
        + ",\n".join(outputs)
        + f"\n]\ninstance_group [ {{ count: {opts.instances}, kind: {opts.kind} }} ]\n"
        + f"parameters [\n{param_lines}\n]\n"
    )


def write_repository(
    artifact: str | os.PathLike, out: str | os.PathLike, options: RepoOptions | None = None
) -> Path:
    """Write the Triton model repository serving ``artifact`` into ``out`` (which must not
    exist, or be empty); returns the path of the model folder. The artifact is verified and
    copied in, so the repository is self-contained."""
    from pomexport.export.artifact import load_artifact

    opts = options or RepoOptions()
    opts.check()
    art = load_artifact(artifact)
    rows = opts.max_streams * (2 if opts.cfg_scale != 1.0 else 1)
    if rows > art.batch[2]:
        raise ConfigError(
            f"{opts.max_streams} streams need batches of {rows} rows and the artifact's range "
            f"ends at {art.batch[2]}: rebuild it with a larger --batch or lower --max-streams"
        )
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Built next to `out`, then renamed: a failure leaves no half-written repository.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model = tmp / MODEL_NAME
        version = model / "1"
        shutil.copytree(art.root, version / "artifact")
        (version / "model.py").write_text(MODEL_PY)
        cfg = art.config
        stream_config = model_config(opts, cfg.in_channels, cfg.input_size)
        (model / "config.pbtxt").write_text(stream_config)
        if opts.kind == "KIND_GPU":
            from pomexport.runtime.serving.gpu_repository import write_gpu_models

            write_gpu_models(art, tmp, opts, stream_config)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote Triton model repository %s (%s)", out, MODEL_NAME)
    return out / MODEL_NAME
