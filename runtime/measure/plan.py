"""Memory budget of a PoM-DiT deployment on a Jetson (``pomexport plan``).

Jetson memory is shared by the CPU and the GPU, so everything below comes out of one pool:
``available = total - os_reserve``. For a model (params ``P``, width ``D``, depth ``L``,
state width ``C``, MLP hidden ``H = mlp_ratio * D``, ``N`` tokens per frame, frame of
``E = C_in * H_img * W_img`` values), ``S`` streams, ``R = S`` rows (``2 S`` with CFG) and
the engine profile's max batch ``B >= R``:

- weights: fp32 ``4 P``; fp16 ``2 P``; int8 ``1 * Pq + 4 * Cq + 2 * (P - Pq)`` where ``Pq``
  are the weights of the quantized GEMMs/convs (calibration/placement.py: patch conv, each
  block's mixer ``proj_h``/``proj_g`` and MLP ``fc1``/``fc2``, final projection), ``Cq``
  their output channels (one fp32 scale each); the rest (conditioning path, adaLN, the
  mixer's ``proj_out``, biases) stays fp16.
- activations at batch ``B``: the largest live tensors of one step,
  ``B * N * (2 D + max(3 C, 2 H)) * a`` with ``a`` = 4 (fp32) or 2 (fp16, int8): the
  residual stream and the modulated input (``2 D``), plus either the mixer's ``h``, ``g``,
  ``y`` (``3 C``) or the MLP's hidden before and after GELU (``2 H``). TensorRT's real
  figure is ``ICudaEngine::getDeviceMemorySizeV2()`` after the build; this is an estimate.
- step I/O at batch ``B``: ``x_t`` and ``v`` ``2 * B * E * a`` + ``t``, ``count`` (4 B) and
  ``label``, ``frame_index`` (8 B) ``24 B``; plus the runtime's fp32 latent ``4 S E``.
- state per stream (row): ``L * C * 4 + 4`` bytes (fp32 sums and count); the runtime holds
  three copies (ping-pong + scratch) for each of the ``R`` rows.
- overhead: CUDA context + TensorRT runtime, constants below.
- decoder (an artifact with a decoder stage, given as MODEL): weights, activations, I/O and
  the Wan cache buffers (x2 ping-pong per stream) of its graphs (``plan_decoder.py``).
- run total = weights + activations + I/O + state + decoder + overhead.
- build peak (on the device) = 3 x weights (parsed ONNX on the host, engine being built,
  serialised plan; the larger of the step's and the decoder's, engines built one at a time)
  + builder workspace cap + overhead.

It fits when both totals are at most ``available``.

The constants (OS reserve, CUDA context, TensorRT runtime) are NOT measured here (no Jetson
in this environment): they are round estimates for JetPack 6/7 with lazy CUDA module
loading. Measure on the device (``tegrastats``, or ``cudaMemGetInfo`` before and after
creating the runtime) and pass the measured numbers as overrides.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pomexport.errors import ConfigError
from pomexport.runtime.measure.plan_decoder import DecoderBudget, decoder_budget

if TYPE_CHECKING:  # importing pomexport.models pulls in torch: `pomexport --help` stays fast
    from pomexport.models.config import PoMDiTConfig

MIB = 1 << 20
GIB = 1 << 30
PRECISIONS = ("fp32", "fp16", "int8")
# Modules whose GEMM/conv calibration/placement.py quantizes (token path; not the timestep
# MLP, adaLN or the mixer's proj_out).
QUANTIZED_MODULES = re.compile(r"patch\.proj|blocks\.\d+\.(mixer\.proj_[hg]|mlp\.[02])|final\.proj")


@dataclass(frozen=True)
class Target:
    """A device: total shared memory and the reserves taken before the model gets any.

    ``os_reserve_mib``: Linux + JetPack services (headless); ``cuda_context_mib``: the CUDA
    context with lazy module loading; ``tensorrt_mib``: libnvinfer code and its kernels
    resident after loading; ``workspace_mib``: the builder workspace cap pomexport sets for
    an on-device engine build (TensorRT's default is all device memory, which on a shared-
    memory board starves the OS).
    """

    name: str
    total_mib: int
    os_reserve_mib: int
    cuda_context_mib: int = 300
    tensorrt_mib: int = 400
    workspace_mib: int = 1024

    @property
    def available_mib(self) -> int:
        return self.total_mib - self.os_reserve_mib


TARGETS: dict[str, Target] = {
    "orin-nano-8gb": Target("orin-nano-8gb", 8 * 1024, 1536, workspace_mib=1024),
    "orin-nx-16gb": Target("orin-nx-16gb", 16 * 1024, 2048, workspace_mib=2048),
    "agx-orin-64gb": Target("agx-orin-64gb", 64 * 1024, 3072, workspace_mib=4096),
    "thor": Target("thor", 128 * 1024, 4096, workspace_mib=8192),
}


@dataclass(frozen=True)
class WeightCounts:
    """Parameters of a config: all, those of the quantized GEMMs, and their out channels."""

    params: int
    quantized: int
    quantized_channels: int


def weight_counts(cfg: PoMDiTConfig) -> WeightCounts:
    """Counted on torch's meta device (no memory allocated)."""
    import torch

    from pomexport.models.pom_dit import PoMDiT

    with torch.device("meta"):
        model = PoMDiT(cfg)
    params = sum(p.numel() for p in model.parameters())
    quantized = channels = 0
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is not None and weight.dim() >= 2 and QUANTIZED_MODULES.fullmatch(name):
            quantized += weight.numel()
            channels += weight.shape[0]
    return WeightCounts(params, quantized, channels)


def weight_bytes(counts: WeightCounts, precision: str) -> int:
    """Bytes of the engine's weights at ``precision`` (module docstring)."""
    if precision == "fp32":
        return 4 * counts.params
    if precision == "fp16":
        return 2 * counts.params
    if precision == "int8":
        rest = counts.params - counts.quantized
        return counts.quantized + 4 * counts.quantized_channels + 2 * rest
    raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def activation_bytes(cfg: PoMDiTConfig, batch: int, precision: str) -> int:
    """``B * N * (2 D + max(3 C, 2 H)) * a``: the largest live tensors of one step."""
    hidden = int(cfg.width * cfg.mlp_ratio)
    per_token = 2 * cfg.width + max(3 * cfg.state_width, 2 * hidden)
    return batch * cfg.tokens_per_frame * per_token * _act_bytes(precision)


def io_bytes(cfg: PoMDiTConfig, batch: int, streams: int, precision: str) -> int:
    """Step I/O buffers at batch B plus the runtime's fp32 latents of S streams."""
    frame = cfg.in_channels * cfg.input_size * cfg.input_size
    return 2 * batch * frame * _act_bytes(precision) + 24 * batch + 4 * streams * frame


def state_bytes_per_stream(cfg: PoMDiTConfig) -> int:
    """``L * C * 4 + 4``: fp32 per-layer sums and the fp32 count of one row."""
    return cfg.depth * cfg.state_width * 4 + 4


def _act_bytes(precision: str) -> int:
    return 4 if precision == "fp32" else 2


@dataclass(frozen=True)
class Budget:
    """One (model, precision) on one target; every size in bytes."""

    model: str
    precision: str
    target: str
    streams: int
    rows: int
    batch: int
    params: int
    weights: int
    activations: int
    io: int
    state_per_stream: int
    state: int
    workspace: int
    overhead: int
    run_total: int
    build_total: int
    available: int
    decoder: DecoderBudget | None = None  # an artifact's decoder stage (plan_decoder.py)

    @property
    def fits_run(self) -> bool:
        return self.run_total <= self.available

    @property
    def fits_build(self) -> bool:
        """Whether the engine can be built on the device itself (else build it elsewhere:
        same GPU model, same TensorRT version)."""
        return self.build_total <= self.available

    @property
    def fits(self) -> bool:
        return self.fits_run and self.fits_build

    def as_dict(self) -> dict:
        fields = asdict(self)
        fields.pop("decoder")
        if self.decoder is not None:  # absent without one: those budgets print as before
            fields["decoder"] = self.decoder.as_dict()
        return {
            **fields,
            "fits_run": self.fits_run,
            "fits_build": self.fits_build,
            "fits": self.fits,
        }


def _rows_and_batch(streams: int, batch: int | None, cfg_guidance: bool) -> tuple[int, int]:
    """(batch rows the streams need, the profile's max batch); ConfigError when they do not fit."""
    if streams < 1:
        raise ConfigError(f"streams must be >= 1, got {streams}")
    rows = streams * (2 if cfg_guidance else 1)
    batch = rows if batch is None else batch
    if batch < rows:
        why = " (CFG doubles them)" if cfg_guidance else ""
        raise ConfigError(
            f"{streams} stream(s) need {rows} batch rows{why}"
            f" but the profile's max batch is {batch}"
        )
    return rows, batch


def plan(
    cfg: PoMDiTConfig,
    target: Target,
    precision: str,
    streams: int = 1,
    batch: int | None = None,
    cfg_guidance: bool = True,
    model: str = "",
    counts: WeightCounts | None = None,
    decoder: DecoderBudget | None = None,
) -> Budget:
    """The memory budget of ``streams`` streams of ``cfg`` at ``precision`` on ``target``.

    ``batch``: the engine profile's max batch (default: the rows needed, ``2 * streams`` with
    CFG); ``decoder``: the decoder stage's rows, added to the run total. Raises ConfigError
    when the rows do not fit in that batch.
    """
    rows, batch = _rows_and_batch(streams, batch, cfg_guidance)
    counts = counts or weight_counts(cfg)
    weights = weight_bytes(counts, precision)
    acts = activation_bytes(cfg, batch, precision)
    io = io_bytes(cfg, batch, streams, precision)
    per_stream = state_bytes_per_stream(cfg)
    state = 3 * rows * per_stream
    overhead = (target.cuda_context_mib + target.tensorrt_mib) * MIB
    workspace = target.workspace_mib * MIB
    return Budget(
        model=model,
        precision=precision,
        target=target.name,
        streams=streams,
        rows=rows,
        batch=batch,
        params=counts.params,
        weights=weights,
        activations=acts,
        io=io,
        state_per_stream=per_stream,
        state=state,
        workspace=workspace,
        overhead=overhead,
        run_total=weights + acts + io + state + (decoder.total if decoder else 0) + overhead,
        build_total=3 * max(weights, decoder.weights if decoder else 0) + workspace + overhead,
        available=target.available_mib * MIB,
        decoder=decoder,
    )


def get_target(name: str, **overrides: int | None) -> Target:
    """A target by name, with measured constants (``os_reserve_mib``...) overriding ours."""
    if name not in TARGETS:
        raise ConfigError(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if any(v < 0 for v in changes.values()):
        raise ConfigError("memory overrides must be >= 0 MiB")
    return replace(TARGETS[name], **changes)


def model_config(name: str) -> PoMDiTConfig:
    """The config of a bundled model (from its weights' metadata), a preset, a weights file or
    an artifact directory (its manifest's)."""
    from pomexport.models.config import PoMDiTConfig
    from pomexport.models.presets import PRESETS, get_preset
    from pomexport.models.registry import BUNDLED, bundled_path
    from pomexport.models.weights import CONFIG_KEY, read_state_dict

    if name in BUNDLED:
        path = bundled_path(name)
        if not path.is_file():
            return get_preset("tiny")  # the bundled model's architecture, before training lands
    elif name.removeprefix("DiT-").removeprefix("PoM-DiT-") in PRESETS:
        return get_preset(name)
    elif _is_artifact(name):
        return PoMDiTConfig.from_dict(_load(name).manifest["model"]["config"])
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown model {name!r}: not a bundled model, preset or weights file"
            )
    _, meta = read_state_dict(path)
    return PoMDiTConfig.from_dict(json.loads(meta[CONFIG_KEY]))


def plan_models(
    models: list[str] | tuple[str, ...],
    target: Target,
    precisions: list[str] | tuple[str, ...],
    streams: int = 1,
    batch: int | None = None,
    cfg_guidance: bool = True,
) -> list[Budget]:
    """:func:`plan` for every model name and precision (parameters counted once per model)."""
    budgets = []
    for name in models:
        cfg = model_config(name)
        counts = weight_counts(cfg)
        dec = decoder_budget(_load(name), streams) if _is_artifact(name) else None
        for precision in precisions:
            row = plan(cfg, target, precision, streams, batch, cfg_guidance, name, counts, dec)
            budgets.append(row)
    return budgets


def _is_artifact(name: str) -> bool:
    from pomexport.export.artifact import MANIFEST

    return Path(name).is_dir() and (Path(name) / MANIFEST).is_file()


def _load(name: str):
    """The artifact at ``name``, verified (its decoder graphs are read)."""
    from pomexport.export.artifact import load_artifact

    return load_artifact(name)
