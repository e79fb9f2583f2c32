"""The GPU models of a repository (``serve-repo --kind gpu``): ``pomdit_step``, the step graph
on Triton's ONNX Runtime backend with implicit state, and ``pomdit_frames``, the BLS frame
loop clients call (:mod:`~pomexport.runtime.serving.implicit_state`,
:mod:`~pomexport.runtime.serving.bls_model`)."""

from __future__ import annotations

from pathlib import Path

import onnx

from pomexport.errors import ConfigError
from pomexport.runtime.serving.implicit_state import implicit_state_model
from pomexport.runtime.serving.repository import (
    RepoOptions,
    _params,
    _strategy,
    _tensor,
)

STEP_MODEL, FRAMES_MODEL = "pomdit_step", "pomdit_frames"

BLS_PY = '''"""Triton BLS entry point, written by `pomexport serve-repo --kind gpu`."""

import triton_python_backend_utils as pb_utils

from pomexport.runtime.serving.bls_model import FramesModel


class TritonPythonModel(FramesModel):
    pb = pb_utils
'''


def _state(name_in: str, name_out: str, dtype: str, dims: list[int]) -> str:
    return (
        f'    {{ input_name: "{name_in}", output_name: "{name_out}", data_type: {dtype}, '
        f"dims: {dims},\n      initial_state: {{ data_type: {dtype}, dims: {dims}, "
        'zero_data: true, name: "empty" } }'
    )


def step_config(opts: RepoOptions, cfg) -> str:
    """``config.pbtxt`` of the implicit-state step model (ONNX Runtime backend, GPU)."""
    c, s = cfg.in_channels, cfg.input_size
    inputs = [
        _tensor("X_T", "TYPE_FP32", [c, s, s]),
        _tensor("T", "TYPE_FP32", [1]),
        _tensor("LABEL", "TYPE_INT64", [1]),
        _tensor("COMMIT", "TYPE_FP32", [1]),
    ]
    states = [
        _state("STATE_IN", "STATE_OUT", "TYPE_FP32", [cfg.depth, cfg.state_width]),
        _state("COUNT_IN", "COUNT_OUT", "TYPE_FP32", [1]),
        _state("FRAME_IN", "FRAME_OUT", "TYPE_INT64", [1]),
    ]
    return (
        f'name: "{STEP_MODEL}"\nbackend: "onnxruntime"\nmax_batch_size: {opts.max_streams}\n'
        "sequence_batching {\n"
        f"  max_sequence_idle_microseconds: {int(opts.idle_timeout_s * 1e6)}\n"
        + _strategy(opts)
        + "  state [\n"
        + ",\n".join(states)
        + "\n  ]\n}\ninput [\n"
        + ",\n".join(inputs)
        + "\n]\noutput [\n"
        + _tensor("V", "TYPE_FP32", [c, s, s])
        + f"\n]\ninstance_group [ {{ count: {opts.instances}, kind: KIND_GPU }} ]\n"
    )


def frames_config(opts: RepoOptions, cfg, stream_config: str) -> str:
    """``config.pbtxt`` of the BLS model: the stream model's I/O and sequence batcher."""
    text = stream_config.replace('name: "pomdit_stream"', f'name: "{FRAMES_MODEL}"')
    text = text.replace(f"kind: {opts.kind}", "kind: KIND_CPU")
    extra = _params({"step_model": STEP_MODEL, "null_label": cfg.num_classes})
    return text.replace("parameters [\n", f"parameters [\n{extra},\n")


def write_gpu_models(art, root: Path, opts: RepoOptions, stream_config: str) -> None:
    """Write ``pomdit_step`` (wrapped ONNX + config) and ``pomdit_frames`` under ``root``."""
    if opts.cfg_scale != 1.0:
        raise ConfigError("the GPU (implicit-state) models do not do CFG yet: use --cfg 1")
    if opts.sampler != "euler":
        raise ConfigError("the GPU models' frame loop samples with euler only")
    if art.precision != "fp32":
        raise ConfigError(f"the GPU models take an fp32 artifact, got {art.precision}")
    cfg = art.config
    model = implicit_state_model(
        art.onnx_path("portable"),
        cfg.depth,
        cfg.state_width,
        cfg.in_channels,
        cfg.input_size,
        cfg.tokens_per_frame,
    )
    (root / STEP_MODEL / "1").mkdir(parents=True)
    large = model.ByteSize() > 1 << 30  # protobuf's 2 GiB limit: weights go beside the graph
    onnx.save(model, str(root / STEP_MODEL / "1" / "model.onnx"), save_as_external_data=large)
    (root / STEP_MODEL / "config.pbtxt").write_text(step_config(opts, cfg))
    (root / FRAMES_MODEL / "1").mkdir(parents=True)
    (root / FRAMES_MODEL / "1" / "model.py").write_text(BLS_PY)
    (root / FRAMES_MODEL / "config.pbtxt").write_text(frames_config(opts, cfg, stream_config))
