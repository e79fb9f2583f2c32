"""ONNX Runtime backends: the artifact's portable step graph on the CPU, CUDA or TensorRT EP.

The runtime's buffers are torch tensors (``runtime/backend.py``); this backend binds them to
the session by data pointer (``IOBinding.bind_input/bind_output``), so a step copies and
allocates nothing: ONNX Runtime reads ``x_t, t, label, frame_index, state, count`` where the
generator wrote them and writes ``v`` and ``state_out`` into the generator's buffers. One
binding is made per distinct set of buffers (the ping-pong state gives four: committed A or
B read, scratch or the other buffer written) and reused for every later step.

ONNX Runtime runs the portable flavor (``model.onnx``): it inlines the model-local PolyMixer
function, so no custom-op library is needed. A plugin-only artifact is refused.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import ArtifactError, ConfigError, StateError
from pomexport.export.artifact import Artifact, load_artifact
from pomexport.export.artifact.contract import STEP_INPUTS, STEP_OUTPUTS
from pomexport.models.config import PoMDiTConfig
from pomexport.runtime.backend import StepBuffers, allocate_like
from pomexport.runtime.providers import (
    CPU_EP,
    CUDA_EP,
    ORT_NAMES,
    ORT_PROVIDERS,
    TRT_EP,
    check_available,
    import_onnxruntime,
)
from pomexport.runtime.threads import cpu_threads

logger = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}
_MAX_BINDINGS = 8  # the generator needs 4 (ping-pong x {scratch, commit}); keep a few spare
# ORT's own TensorRT engine cache: outside the artifact (a runtime never writes to one), one
# folder per ONNX file (its sha256), under $POMEXPORT_CACHE (default ~/.cache/pomexport).
TRT_CACHE = "onnxruntime-trt"
CACHE_ENV = "POMEXPORT_CACHE"
CPU_ENCODING = "ort-cpu"  # int8 artifacts: the CPU EP's flavor (calibration.api.ORT_CPU)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def default_threads() -> int:
    """The CPU EP's intra-op threads when none are asked for: ``OMP_NUM_THREADS`` when set,
    else the cores idle at session creation, the pool not spinning between kernels
    (``runtime/threads.py``: a loaded machine is not made slower than one thread)."""
    return cpu_threads()


def _session_options(ort, threads: int):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # One step is a chain of small kernels: parallelism inside each op, none across ops.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads > 1:  # idle workers sleep instead of spinning on a core others may need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: ORT's warnings are not the user's problem
    return options


def _profile_shapes(artifact: Artifact, batch: int) -> str:
    """TensorRT EP profile string ``name:d0xd1,...`` for the step inputs at one batch size."""
    parts = []
    for entry in artifact.inputs:
        dims = [batch if d == "B" else int(d) for d in entry["shape"]]
        parts.append(f"{entry['name']}:{'x'.join(str(d) for d in dims)}")
    return ",".join(parts)


class OrtBackend:
    """The step graph of an artifact in an ONNX Runtime session, with IO binding.

    ``backend``: ``ort`` (CPU EP), ``ort-cuda`` (CUDA EP, buffers on the GPU) or ``ort-trt``
    (TensorRT EP with the CUDA EP behind it; its engines cached outside the artifact, in
    ``trt_cache`` or :func:`default_trt_cache`).
    ``threads``: intra-op threads of the CPU EP (default: :func:`default_threads`, the thread
    policy of ``runtime/threads.py``: ``OMP_NUM_THREADS`` when set, else the idle cores;
    with more than one thread the pool does not spin between kernels).
    """

    def __init__(
        self,
        artifact: Artifact | str | os.PathLike,
        backend: str = "ort",
        threads: int | None = None,
        device_id: int = 0,
        trt_cache: str | os.PathLike | None = None,
    ) -> None:
        if backend not in ORT_PROVIDERS:
            raise ConfigError(f"unknown ONNX Runtime backend {backend!r}; known: {list(ORT_NAMES)}")
        check_available(backend)
        self.artifact = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
        self._config = self.artifact.config
        if self._config.text_dim:
            raise ConfigError("the ONNX Runtime backend drives class-conditional models only")
        self._dtype = self._model_dtype()
        self._backend = backend
        self._device = torch.device("cpu" if backend == "ort" else f"cuda:{device_id}")
        self.threads = threads or default_threads()
        self._trt_cache = Path(trt_cache) if trt_cache else None
        self.session = self._create_session()
        self._check_io()
        self._run_options = self._make_run_options()
        self._bindings: OrderedDict[tuple, object] = OrderedDict()
        logger.info(
            "%s: %s on %s (%s, %d threads)",
            self.name,
            self.artifact.root,
            self.session.get_providers()[0],
            self.artifact.precision,
            self.threads,
        )

    # -- Backend protocol -------------------------------------------------------------------
    @property
    def config(self) -> PoMDiTConfig:
        return self._config

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def name(self) -> str:
        return ORT_NAMES[self._backend]

    @property
    def providers(self) -> list[str]:
        """The session's execution providers, in priority order."""
        return list(self.session.get_providers())

    def allocate(self, batch: int) -> StepBuffers:
        """Zeroed step I/O for ``batch`` rows, within the artifact's batch range."""
        lo, _, hi = self.artifact.batch
        if not lo <= batch <= hi:
            raise ConfigError(
                f"batch of {batch} rows is outside the artifact's range {lo}..{hi} "
                "(CFG doubles the rows; rebuild with a larger --batch)"
            )
        return allocate_like(self._config, batch, self._device, self._dtype)

    def step(
        self,
        io: StepBuffers,
        state: torch.Tensor,
        count: torch.Tensor,
        state_out: torch.Tensor,
    ) -> None:
        """One session run on the bound buffers: writes ``io.v`` and ``state_out`` in place."""
        binding = self._binding(io, state, count, state_out)
        self.session.run_with_iobinding(binding, self._run_options)

    # -- session ----------------------------------------------------------------------------
    def _model_dtype(self) -> torch.dtype:
        name = next(e["dtype"] for e in self.artifact.inputs if e["name"] == "x_t")
        if name not in TORCH_DTYPES:
            raise ArtifactError(f"{self.artifact.root}: model dtype {name!r} is not supported")
        return TORCH_DTYPES[name]

    def _onnx_path(self) -> Path:
        # An int8 artifact's portable graph has TensorRT's int8 activations; x86 ONNX Runtime
        # runs its uint8-activation twin faster (docs/design.md §4, calibration/api.py).
        if self._backend == "ort" and CPU_ENCODING in self.artifact.flavors:
            return self.artifact.onnx_path(CPU_ENCODING)
        if "portable" not in self.artifact.flavors:
            raise ArtifactError(
                f"{self.artifact.root} has only the plugin flavor, which needs the TensorRT "
                "PolyMixer plugin; ONNX Runtime runs the portable flavor (model.onnx): "
                "re-export with --flavor portable or both"
            )
        return self.artifact.onnx_path("portable")

    def _providers(self) -> list:
        provider = ORT_PROVIDERS[self._backend]
        if provider == CPU_EP:
            return [CPU_EP]
        cuda = {"device_id": str(self._device.index)}
        # ORT computes on torch's stream: torch's writes into the inputs are ordered before
        # the step and its outputs before torch reads them, with no host synchronisation.
        cuda["user_compute_stream"] = str(torch.cuda.current_stream(self._device).cuda_stream)
        chain = [(CUDA_EP, cuda), CPU_EP]
        if provider == TRT_EP:
            chain.insert(0, (TRT_EP, self._trt_options(cuda)))
        return chain

    def _trt_options(self, cuda: dict) -> dict:
        """Engine and timing caches in the artifact; profiles from its batch range. No
        ``trt_fp16_enable``: the precision is baked into the ONNX graph (docs/design.md §4)."""
        if self._trt_cache is None:
            self._trt_cache = default_trt_cache(self.artifact, self._onnx_path())
        self._trt_cache.mkdir(parents=True, exist_ok=True)
        lo, opt, hi = self.artifact.batch
        return {
            **cuda,
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(self._trt_cache),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(self._trt_cache),
            "trt_profile_min_shapes": _profile_shapes(self.artifact, lo),
            "trt_profile_opt_shapes": _profile_shapes(self.artifact, opt),
            "trt_profile_max_shapes": _profile_shapes(self.artifact, hi),
        }

    def _create_session(self):
        ort = import_onnxruntime()
        path = self._onnx_path()
        options = _session_options(ort, self.threads)
        name = path.relative_to(self.artifact.root).as_posix()
        # From the hashed bytes (or a private copy of them), never by path: a file swapped
        # after load_artifact is refused instead of run (issue 22).
        with self.artifact.verified_onnx(name) as source:
            try:
                return ort.InferenceSession(source, options, providers=self._providers())
            except Exception as e:  # ORT raises its own pybind types (Fail, InvalidProtobuf...)
                raise ArtifactError(f"{path}: ONNX Runtime cannot load it: {_first_line(e)}") from e

    def _check_io(self) -> None:
        got_in = [i.name for i in self.session.get_inputs()]
        got_out = [o.name for o in self.session.get_outputs()]
        want_in = [s.name for s in STEP_INPUTS]
        want_out = [s.name for s in STEP_OUTPUTS]
        if got_in != want_in or got_out != want_out:
            raise ArtifactError(
                f"{self.artifact.root}: graph I/O {got_in} -> {got_out} is not the step "
                f"contract {want_in} -> {want_out}"
            )

    def _make_run_options(self):
        ort = import_onnxruntime()
        options = ort.RunOptions()
        # No graph capture; set explicitly because the Python wrapper otherwise looks the
        # key up through an exception on every run (~0.1 ms, 10 % of a tiny-model step).
        options.add_run_config_entry("gpu_graph_id", "-1")
        if self._device.type == "cuda":
            # Same stream as torch (see _providers): no host sync after every step.
            options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        return options

    # -- IO binding -------------------------------------------------------------------------
    def _binding(self, io: StepBuffers, state, count, state_out):
        tensors = io.tensors(state, count, state_out)
        key = tuple((t.data_ptr(), tuple(t.shape)) for t in tensors.values())
        binding = self._bindings.get(key)
        if binding is None:
            binding = self._bind(tensors, state)
            self._bindings[key] = binding
            if len(self._bindings) > _MAX_BINDINGS:
                self._bindings.popitem(last=False)
        else:
            self._bindings.move_to_end(key)
        return binding

    def _bind(self, tensors: dict[str, torch.Tensor], state: torch.Tensor):
        if tensors["state_out"].data_ptr() == state.data_ptr():
            raise StateError("state_out must not alias state")
        binding = self.session.io_binding()
        for name, tensor in tensors.items():
            self._check_buffer(name, tensor)
            bind = binding.bind_input if name not in ("v", "state_out") else binding.bind_output
            device = self._device
            bind(
                name,
                device.type,
                device.index or 0,
                _NUMPY_DTYPES[tensor.dtype],
                tuple(tensor.shape),
                tensor.data_ptr(),
            )
        return binding

    def _check_buffer(self, name: str, tensor: torch.Tensor) -> None:
        """A bound buffer is read/written in place: right device, dtype and layout."""
        if tensor.device != self._device:
            raise StateError(f"{name} is on {tensor.device}, the session on {self._device}")
        expected = self._dtype if name in ("x_t", "v") else None
        if expected is not None and tensor.dtype != expected:
            raise StateError(f"{name} is {tensor.dtype}, the artifact wants {expected}")
        if tensor.dtype not in _NUMPY_DTYPES or not tensor.is_contiguous():
            raise StateError(f"{name} must be a contiguous {tensor.dtype} buffer")


def default_trt_cache(artifact: Artifact, onnx_path: Path) -> Path:
    """Where ORT's TensorRT EP caches the engines of ``onnx_path`` (a file of ``artifact``):
    ``$POMEXPORT_CACHE`` (default ``~/.cache/pomexport``) / onnxruntime-trt / its sha256
    prefix. Outside the artifact, so running it never writes to it."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pomexport")
    name = onnx_path.relative_to(artifact.root).as_posix()
    return base / TRT_CACHE / artifact.files[name]["sha256"][:16]
