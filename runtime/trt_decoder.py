"""An artifact's decoder stage on its TensorRT engines (issue 21; docs/design.md §6.2).

``pomexport build MODEL --decoder DIR --backend trt`` records one engine per decoder graph in
the decoder entry (``export/engine/decoder_engine.py``); a bundle's ``build.sh`` records the
ones it builds on the device in device.json (docs/design.md §6.1). A TensorRT step backend
decodes on them when every role has one built for this GPU and TensorRT release
(:func:`find_decoder_engines`, plain data, no TensorRT needed); otherwise
``runtime/decoding.py`` runs the graphs on ONNX Runtime's CUDA EP.

:class:`TrtDecoder` mirrors :class:`~pomexport.runtime.ort_decoder.OrtDecoder`: plans are
deserialized from the bytes the loader hashed (``Artifact.read_verified``, as the step engine
is), every engine input and output is a persistent torch CUDA buffer of the manifest's ``io``
dtype and static batch-1 shape, bound by address, and a ``wan-stream`` stream keeps two cache
sets (``first`` writes set 0; ``next`` reads the front set and writes the other, then they
swap). Decoding a stream allocates nothing on the GPU per frame. TensorRT is imported when a
decoder is made, never at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from pomexport.errors import ArtifactError, StateError
from pomexport.export.artifact import Artifact
from pomexport.export.artifact.decoder import DecoderSpec
from pomexport.export.engine.decoder_engine import (
    DecoderEngine,
    cached_decoder_engine,
    decoder_engine_plan,
)
from pomexport.export.engine.target import import_tensorrt
from pomexport.runtime.decoder_caches import StreamCaches, StreamDecoder, first_role
from pomexport.runtime.trt_backend import TORCH_DTYPES

logger = logging.getLogger(__name__)

__all__ = ["DecoderEngines", "TrtDecoder", "find_decoder_engines", "tensorrt_target"]

_TRT_DTYPES = {"float32": "FLOAT", "float16": "HALF"}
BUILD_HINT = "pomexport build MODEL --decoder DIR --backend trt"


@dataclass(frozen=True)
class DecoderEngines:
    """Which decoder plans match one (TensorRT, GPU, SM): ``plans`` by role, and the engines
    a build for that target would make that the artifact does not record (``missing``)."""

    plans: dict[str, str]
    missing: tuple[DecoderEngine, ...]

    @property
    def complete(self) -> bool:
        """Every role has its engine: the decoder can run on TensorRT."""
        return not self.missing


def find_decoder_engines(
    artifact: Artifact, trt_version: str, gpu_name: str, sm: int
) -> DecoderEngines:
    """The artifact's decoder plans built under the key a build for (TensorRT
    ``trt_version``, GPU ``gpu_name`` of SM ``sm``) would use (graph sha256, TensorRT release,
    GPU, SM, no profile): listed and hashed, and recorded either in the manifest's decoder
    entry (``pomexport build --decoder DIR --backend trt``) or in the verified device.json
    (the bundle's ``build.sh`` on the device), whose decoder records the loader adds to the
    entry's (``export/artifact/device.py``; :func:`cached_decoder_engine` matches both)."""
    plans, missing = {}, []
    for engine in decoder_engine_plan(artifact, trt_version, gpu_name, sm):
        if cached_decoder_engine(artifact, engine):
            plans[engine.role] = engine.plan_name
        else:
            missing.append(engine)
    return DecoderEngines(plans, tuple(missing))


def tensorrt_target(device: int = 0) -> tuple[str, str, int]:
    """(TensorRT version, GPU name, SM) of CUDA device ``device``: what an engine must have
    been built for. BuildError without TensorRT or a GPU."""
    from pomexport.export.engine.builder import gpu_target

    trt = import_tensorrt()
    target = gpu_target(device)
    return trt.__version__, target.name, target.sm


class TrtDecoder(StreamDecoder):
    """The decoder graphs of ``spec`` as TensorRT engines (``plans``: serialized bytes by
    role) on CUDA device ``device``: one execution context per role, shared by the streams,
    whose buffer addresses are set before each call (a host-side pointer store)."""

    def __init__(self, spec: DecoderSpec, plans: dict[str, bytes], device: int = 0) -> None:
        from pomexport.export.engine.progress import trt_logger

        self._trt = import_tensorrt()
        self._logger = trt_logger()
        self.spec = spec
        self.device = torch.device(f"cuda:{device}")
        self.name = f"{spec.source_class} on TensorRT ({spec.precision})"
        if sorted(plans) != sorted(spec.files):
            raise ArtifactError(f"decoder engines for {sorted(plans)}, not {sorted(spec.files)}")
        with torch.cuda.device(self.device):
            self._runtime = self._trt.Runtime(self._logger)  # engines must not outlive it
            self._engines = {role: self._deserialize(role, plan) for role, plan in plans.items()}
            self._contexts = {role: self._context(role) for role in plans}
            self._cuda = torch.cuda.Stream(self.device)
        self._latent = self._buffer(self.spec.graph(first_role(spec))["inputs"][0])
        self._rgb = {role: self._buffer(spec.graph(role)["outputs"][0]) for role in spec.files}
        shape = self._rgb[first_role(spec)].shape
        self.rgb_shape = (3, shape[-2], shape[-1])
        self._streams = StreamCaches(spec, self._buffer)
        self._bound: dict[tuple[str, str], int] = {}  # (role, tensor) -> address set

    @classmethod
    def from_artifact(
        cls, artifact: Artifact, plans: dict[str, str], device: int = 0
    ) -> TrtDecoder:
        """The decoder stage of a loaded artifact on the plans named by role (as
        :func:`find_decoder_engines` gives them), read as the loader hashed them."""
        spec = artifact.decoder
        if spec is None:
            raise ArtifactError(f"{artifact.root} has no decoder stage (build --decoder DIR)")
        data = {role: artifact.read_verified(name) for role, name in plans.items()}
        return cls(spec, data, device)

    def _buffer(self, entry: dict) -> torch.Tensor:
        dtype = TORCH_DTYPES[entry["dtype"]]
        return torch.zeros(entry["shape"], dtype=dtype, device=self.device)

    # -- engines ------------------------------------------------------------------------
    def _deserialize(self, role: str, plan: bytes):
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            errors = "; ".join(self._logger.take_errors()) or "no error logged"
            raise ArtifactError(
                f"decoder {role} engine: TensorRT could not deserialise it (another TensorRT "
                f"version or GPU): {errors}"
            )
        self._check_io(role, engine)
        return engine

    def _check_io(self, role: str, engine) -> None:
        """The engine's tensors must be the entry's ``io``: names, directions, dtypes and
        shapes (TensorRT trusts the addresses it is given, so a mismatch would overrun)."""
        trt, graph = self._trt, self.spec.graph(role)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        want = [e["name"] for e in (*graph["inputs"], *graph["outputs"])]
        if sorted(names) != sorted(want):
            raise ArtifactError(f"decoder {role} engine: I/O {names} is not the entry's {want}")
        for kind in ("inputs", "outputs"):
            for entry in graph[kind]:
                name = entry["name"]
                is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
                dtype = getattr(trt.DataType, _TRT_DTYPES[entry["dtype"]])
                shape = list(engine.get_tensor_shape(name))
                if is_input != (kind == "inputs") or engine.get_tensor_dtype(name) != dtype:
                    raise ArtifactError(f"decoder {role} engine: {name} is not {entry['dtype']}")
                if shape != entry["shape"]:
                    raise ArtifactError(f"decoder {role} engine: {name} is {shape}, not static")

    def _context(self, role: str):
        context = self._engines[role].create_execution_context()
        if context is None:
            raise StateError(f"decoder {role}: TensorRT could not create an execution context")
        return context

    # -- LatentDecoder ------------------------------------------------------------------
    def decode(self, stream: int, latent: torch.Tensor) -> torch.Tensor:
        """latent (C, h, w) -> (F, 3, H, W) fp32 on the CPU."""
        call = self._streams.call(stream)
        self._run(call.role, latent, call.read, call.write)
        self._streams.advance(stream, call)
        if not self.spec.streaming:
            return _copy(self._rgb["decode"])  # (1, 3, H, W)
        return _copy(self._rgb[call.role])[0].permute(1, 0, 2, 3).contiguous()  # (F, 3, H, W)

    # -- execution ----------------------------------------------------------------------
    def _run(self, role: str, latent: torch.Tensor, read, write) -> None:
        """Latent in, one enqueue of ``role`` on the decoder's stream, ordered after the
        caller's (the latent may still be being written there) and before it again."""
        self._bind(role, [self._latent, *read], [self._rgb[role], *write])
        caller = torch.cuda.current_stream(self.device)
        self._cuda.wait_stream(caller)
        with torch.cuda.stream(self._cuda):
            self._latent.view(-1).copy_(latent.reshape(-1))  # casts to the border dtype
            if not self._contexts[role].execute_async_v3(self._cuda.cuda_stream):
                errors = "; ".join(self._logger.take_errors()) or "no error logged"
                raise StateError(f"decoder {role}: TensorRT execute_async_v3 failed: {errors}")
        caller.wait_stream(self._cuda)

    def _bind(self, role: str, inputs: list, outputs: list) -> None:
        """Set the addresses of ``role``'s tensors, only those that changed since the last
        call (a stream's cache sets alternate; the latent and RGB buffers never move)."""
        graph = self.spec.graph(role)
        entries = (*graph["inputs"], *graph["outputs"])
        for entry, tensor in zip(entries, (*inputs, *outputs), strict=True):
            name, address = entry["name"], tensor.data_ptr()
            if self._bound.get((role, name)) == address:
                continue
            if not self._contexts[role].set_tensor_address(name, address):
                raise StateError(f"decoder {role}: TensorRT refused the address of {name}")
            self._bound[(role, name)] = address


def _copy(buffer: torch.Tensor) -> torch.Tensor:
    """An fp32 CPU copy of an output buffer (the next call overwrites the buffer). Copied
    whole and as stored, then cast and permuted on the CPU: a cast or a strided copy on the
    GPU would need a GPU temporary per frame. It waits for the decoder's work, which the
    caller's stream was ordered after."""
    return buffer.to("cpu", copy=True).float()
