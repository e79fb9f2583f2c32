"""An artifact's decoder stage on ONNX Runtime (issue 21; docs/design.md §6.2).

Sessions are made from the bytes ``load_artifact`` hashed (``Artifact.verified_onnx``), like
the step graph's. Every graph input and output is a persistent torch buffer bound by data
pointer (IO binding), so a decode call copies the latent in and the RGB out and allocates
nothing:

- ``image``: one binding, ``latent [1, C, h, w] -> rgb [1, 3, H, W]``;
- ``wan-stream``: per stream, two cache sets of the contract's fixed shapes (ping-pong, as
  the mixer state): ``first`` writes set 0; ``next`` reads the front set and writes the other,
  then they swap. Three bindings per stream, made once: a stream of any length decodes in
  constant memory.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from pomexport.errors import ArtifactError, StateError
from pomexport.export.artifact import Artifact
from pomexport.export.artifact.decoder import DecoderSpec
from pomexport.runtime.decoder_caches import StreamCaches, StreamDecoder, first_role
from pomexport.runtime.ort_backend import (
    TORCH_DTYPES,
    _first_line,
    _session_options,
    default_threads,
)
from pomexport.runtime.providers import (
    CPU_EP,
    CUDA_EP,
    ORT_PROVIDERS,
    check_available,
    import_onnxruntime,
)

logger = logging.getLogger(__name__)

_NUMPY = {torch.float32: np.float32, torch.float16: np.float16}


class OrtDecoder(StreamDecoder):
    """The decoder graphs of ``spec`` in ONNX Runtime sessions (``backend``: ``ort`` CPU EP,
    ``ort-cuda`` CUDA EP). ``sources``: what each role's session opens (verified bytes);
    ``threads``: intra-op threads (default: the step's policy, :func:`default_threads`)."""

    def __init__(
        self,
        spec: DecoderSpec,
        sources: dict[str, bytes | str],
        backend: str = "ort",
        threads: int | None = None,
    ) -> None:
        if backend not in ("ort", "ort-cuda"):
            raise StateError(f"the decoder runs on ort or ort-cuda, not {backend!r}")
        check_available(backend)
        self.spec = spec
        self.device = torch.device("cpu" if backend == "ort" else "cuda")
        self.name = f"{spec.source_class} on {ORT_PROVIDERS[backend]} ({spec.precision})"
        threads = threads or default_threads()  # once: the policy samples the CPUs
        self.sessions = {r: self._session(r, src, backend, threads) for r, src in sources.items()}
        self._latent = self._buffer(self._graph_in(first_role(spec))[0])
        outputs = self.spec.graph(first_role(spec))["outputs"]
        self._rgb = {role: self._buffer(self.spec.graph(role)["outputs"][0]) for role in spec.files}
        shape = outputs[0]["shape"]
        self.rgb_shape = (3, shape[-2], shape[-1])
        self._streams = StreamCaches(spec, self._buffer)
        self._bindings: dict[tuple, object] = {}

    @classmethod
    def from_artifact(
        cls, artifact: Artifact, backend: str = "ort", threads: int | None = None
    ) -> OrtDecoder:
        """The decoder stage of a loaded (verified) artifact."""
        spec = artifact.decoder
        if spec is None:
            raise ArtifactError(f"{artifact.root} has no decoder stage (build --decoder DIR)")
        sources = {}
        for role, name in spec.files.items():
            with artifact.verified_onnx(name) as source:  # bytes: no external data here
                if not isinstance(source, bytes):
                    raise ArtifactError(f"{name}: a decoder graph with external data")
                sources[role] = source
        return cls(spec, sources, backend, threads)

    def _graph_in(self, role: str) -> list[dict]:
        return self.spec.graph(role)["inputs"]

    def _buffer(self, entry: dict) -> torch.Tensor:
        dtype = TORCH_DTYPES[entry["dtype"]]
        return torch.zeros(entry["shape"], dtype=dtype, device=self.device)

    def _session(self, role: str, source: bytes | str, backend: str, threads: int):
        ort = import_onnxruntime()
        options = _session_options(ort, threads)
        providers = [CPU_EP] if backend == "ort" else [(CUDA_EP, {"device_id": "0"}), CPU_EP]
        try:
            return ort.InferenceSession(source, options, providers=providers)
        except Exception as e:  # ORT's own pybind error types
            name = self.spec.files[role]
            raise ArtifactError(f"{name}: ONNX Runtime cannot load it: {_first_line(e)}") from e

    # -- LatentDecoder ------------------------------------------------------------------
    def decode(self, stream: int, latent: torch.Tensor) -> torch.Tensor:
        """latent (C, h, w) -> (F, 3, H, W) fp32 on the CPU."""
        call = self._streams.call(stream)
        self._latent.view(-1).copy_(latent.reshape(-1))
        self._run(call.role, self._bind(call.role, call.read, call.write))
        self._streams.advance(stream, call)
        if not self.spec.streaming:
            return _copy(self._rgb["decode"])  # (1, 3, H, W)
        return _copy(self._rgb[call.role][0].permute(1, 0, 2, 3))  # (F, 3, H, W)

    # -- IO binding ---------------------------------------------------------------------
    def _run(self, role: str, binding) -> None:
        self.sessions[role].run_with_iobinding(binding)

    def _bind(self, role: str, read, write):
        key = (role, *(t.data_ptr() for t in (*read, *write)))
        binding = self._bindings.get(key)
        if binding is None:
            graph = self.spec.graph(role)
            inputs = [self._latent, *read]
            outputs = [self._rgb[role], *write]
            binding = self.sessions[role].io_binding()
            for entry, tensor in zip(graph["inputs"], inputs, strict=True):
                binding.bind_input(entry["name"], *self._where(tensor))
            for entry, tensor in zip(graph["outputs"], outputs, strict=True):
                binding.bind_output(entry["name"], *self._where(tensor))
            self._bindings[key] = binding
        return binding

    def _where(self, tensor: torch.Tensor) -> tuple:
        device = self.device
        shape = tuple(tensor.shape)
        return device.type, device.index or 0, _NUMPY[tensor.dtype], shape, tensor.data_ptr()


def _copy(buffer: torch.Tensor) -> torch.Tensor:
    """An fp32 CPU copy of an output buffer (the next call overwrites the buffer)."""
    return buffer.to("cpu", torch.float32, copy=True).contiguous()
