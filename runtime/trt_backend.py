"""TensorRT backend: an artifact's engine behind the ``Backend`` protocol, with CUDA graphs.

    backend = TrtBackend("build/tiny")         # the engine `pomexport build --backend trt` made
    backend = TrtBackend("build/tiny", build_engine=True)   # builds it first when missing
    backend = TrtBackend(EngineFromOnnx("build/tiny", workspace_mb=1024))  # composed
    clip = VideoGenerator(backend, slots=2).run([3, 5], frames=16)

Buffers. The generator allocates its buffers through :meth:`TrtBackend.allocate` once (torch
CUDA tensors) and TensorRT reads and writes them in place by address: nothing is allocated or
copied per step.

Addresses: one execution context, re-pointed per step. The six per-batch buffers (``x_t, t,
label, frame_index, count, v``) never move and are set once. The ping-pong state is the
generator's: a denoising step reads the committed buffer and writes the scratch one, a commit
writes the other ping-pong buffer, so the (``state``, ``state_out``) pair cycles through four
combinations. Per step only those two addresses are set again, and only when they changed
(``set_tensor_address`` is a host-side pointer store, no GPU work). One context with re-set
addresses rather than a context per address set because every context owns its own
activation memory (``engine.device_memory_size``), which on Jetson is the budget that counts.

CUDA graphs. A captured graph freezes the addresses, so one graph is captured per (``state``,
``state_out``) pair -- one per ping-pong parity for denoising and one per parity for the commit,
four for a generator -- on the first step that uses the pair (that step itself runs eagerly:
TensorRT may do one-time work on the first enqueue after a shape change, which must not be
captured). Every later step replays its graph. Engines TensorRT cannot capture fall back to
eager ``execute_async_v3`` with one warning.

Stream. Everything runs on one CUDA stream owned by the backend, ordered after the caller's
current stream (``wait_stream``) and before it again, so no host synchronisation happens in a
step.

Errors. ``execute_async_v3`` returning False raises :class:`StateError` with TensorRT's logged
errors. After every step the stream is queried (non-blocking): a CUDA error there is sticky
(the CUDA context is lost: an illegal address in a kernel, for example), so the backend raises
a clear error, remembers it and refuses every later step. Kernel errors surface
asynchronously, i.e. at the step after the one that caused them at the latest.
"""

from __future__ import annotations

import logging
import os

import torch

from pomexport.errors import ArtifactError, ConfigError, StateError
from pomexport.export.artifact import Artifact
from pomexport.export.artifact.contract import STEP_INPUTS, STEP_OUTPUTS
from pomexport.export.engine.builder import (
    EngineBuild,
    EngineFromOnnx,
    EngineLoader,
    import_tensorrt,
    load_plugin_library,
)
from pomexport.models.config import PoMDiTConfig
from pomexport.runtime.backend import StepBuffers, allocate_like

logger = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_BUFFER_DTYPES = {**TORCH_DTYPES, "int64": torch.int64}
_TRT_DTYPES = {"float32": "FLOAT", "float16": "HALF", "int64": "INT64"}
_STATIC = ("x_t", "t", "label", "frame_index", "count", "v")
_MAX_GRAPHS = 8  # the generator needs 4 (ping-pong x {scratch, commit}); keep a few spare


class TrtBackend:
    """The step graph as a TensorRT engine (``Backend`` protocol).

    ``source``: an artifact (directory or :class:`Artifact`) whose manifest records an engine
    for this GPU and TensorRT version, or a loader returning an :class:`EngineBuild`.
    ``build_engine``: build the engine into the artifact when it has none (default False: a
    backend only loads and runs; a missing engine is an ArtifactError naming
    ``pomexport build --backend trt``). ``cuda_graphs``: capture the step once per address
    set and replay it (default True).
    """

    def __init__(
        self,
        source: Artifact | str | os.PathLike | EngineLoader,
        device: int = 0,
        cuda_graphs: bool = True,
        build_engine: bool = False,
    ) -> None:
        self._trt = import_tensorrt()
        from pomexport.export.engine.progress import trt_logger

        build = _engine(source, device, build_engine)
        self.artifact, self.plan = build.artifact, build.path
        self._config = self.artifact.config
        if self._config.text_dim:
            raise ConfigError("the TensorRT backend drives class-conditional models only")
        self._device = torch.device(f"cuda:{device}")
        self._dtype = self._model_dtype()
        self._logger = trt_logger()
        self.cuda_graphs = cuda_graphs
        with torch.cuda.device(self._device):
            self._engine = self._deserialize()
            self._check_io()
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._device)
        if self._context is None:
            raise StateError(f"{self.plan.name}: TensorRT could not create an execution context")
        self._io = {e["name"]: e for e in (*self.artifact.inputs, *self.artifact.outputs)}
        self._bound: dict[str, int] = {}  # tensor name -> address currently set
        self._batch: int | None = None
        self._graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}
        self._broken: str | None = None
        logger.info("trt: %s (%s) on %s", self.plan.name, build.flavor, self._device)

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
        return "trt"

    def allocate(self, batch: int) -> StepBuffers:
        """Zeroed step I/O for ``batch`` rows on the GPU, within the engine's profile."""
        lo, _, hi = self.artifact.batch
        if not lo <= batch <= hi:
            raise ConfigError(
                f"batch of {batch} rows is outside the engine's profile {lo}..{hi} "
                "(CFG doubles the rows; rebuild with a larger --batch)"
            )
        return allocate_like(self._config, batch, self._device, self._dtype)

    def step(
        self, io: StepBuffers, state: torch.Tensor, count: torch.Tensor, state_out: torch.Tensor
    ) -> None:
        """One engine evaluation on the bound buffers: writes ``io.v`` and ``state_out``."""
        if self._broken is not None:
            raise StateError(self._broken)
        if state_out.data_ptr() == state.data_ptr():
            raise StateError("state_out must not alias state")
        self._bind(io, state, count, state_out)
        caller = torch.cuda.current_stream(self._device)
        self._stream.wait_stream(caller)
        with torch.cuda.stream(self._stream):
            self._run((state.data_ptr(), state_out.data_ptr()))
        caller.wait_stream(self._stream)
        self._check_sticky()

    # -- engine -----------------------------------------------------------------------------
    def _model_dtype(self) -> torch.dtype:
        name = next(e["dtype"] for e in self.artifact.inputs if e["name"] == "x_t")
        if name not in TORCH_DTYPES:
            raise ArtifactError(f"{self.artifact.root}: model dtype {name!r} is not supported")
        return TORCH_DTYPES[name]

    def _deserialize(self):
        # A plan built from the plugin flavor needs the plugin's creators registered first;
        # the library is verified (sha256) before it is loaded.
        if self.artifact.plugin_library is not None:
            load_plugin_library(*self.artifact.plugin_library)
        runtime = self._trt.Runtime(self._logger)
        plan = self.artifact.read_verified(self.plan.relative_to(self.artifact.root).as_posix())
        engine = runtime.deserialize_cuda_engine(plan)
        if engine is None:
            errors = "; ".join(self._logger.take_errors()) or "no error logged"
            raise ArtifactError(
                f"{self.plan.name}: TensorRT could not deserialise the engine (another TensorRT "
                f"version or GPU, or the plugin library missing): {errors}"
            )
        self._runtime = runtime  # the engine must not outlive its runtime
        return engine

    def _check_io(self) -> None:
        """The engine's I/O must be the step contract: names, directions and dtypes."""
        trt, engine = self._trt, self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        want = [s.name for s in STEP_INPUTS] + [s.name for s in STEP_OUTPUTS]
        if sorted(names) != sorted(want):
            raise ArtifactError(f"{self.plan.name}: engine I/O {names} is not the step contract")
        for entry in (*self.artifact.inputs, *self.artifact.outputs):
            name = entry["name"]
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            expected = getattr(trt.DataType, _TRT_DTYPES.get(entry["dtype"], "FLOAT"))
            wrong_mode = is_input != (entry in self.artifact.inputs)
            if wrong_mode or engine.get_tensor_dtype(name) != expected:
                raise ArtifactError(
                    f"{self.plan.name}: tensor {name} is {engine.get_tensor_dtype(name)}, "
                    f"the manifest says {entry['dtype']} ({'input' if is_input else 'output'})"
                )

    # -- addresses and shapes ---------------------------------------------------------------
    def _bind(self, io: StepBuffers, state, count, state_out) -> None:
        if io.batch != self._batch:
            self._set_shapes(io.batch)
        buffers = (io.x_t, io.t, io.label, io.frame_index, count, io.v)
        tensors = dict(zip(_STATIC, buffers, strict=True))
        tensors.update(state=state, state_out=state_out)
        for name, tensor in tensors.items():
            address = tensor.data_ptr()
            if self._bound.get(name) == address:
                continue
            self._check_buffer(name, tensor)
            if not self._context.set_tensor_address(name, address):
                raise StateError(f"TensorRT refused the address of {name}")
            self._bound[name] = address
            if name in _STATIC:  # a static buffer moved: every captured graph is stale
                self._graphs.clear()

    def _set_shapes(self, batch: int) -> None:
        """Input shapes for ``batch`` rows: once per batch size (graphs of another are stale)."""
        for entry in self.artifact.inputs:
            shape = tuple(batch if d == "B" else int(d) for d in entry["shape"])
            if not self._context.set_input_shape(entry["name"], shape):
                raise StateError(f"TensorRT refused shape {shape} for input {entry['name']}")
        self._batch = batch
        self._graphs.clear()

    def _check_buffer(self, name: str, tensor: torch.Tensor) -> None:
        """TensorRT trusts an address blindly: check device, dtype, shape and layout once per
        new address (a short buffer would be overrun on the GPU)."""
        entry = self._io[name]
        dtype = _BUFFER_DTYPES[entry["dtype"]]
        shape = tuple(self._batch if d == "B" else int(d) for d in entry["shape"])
        if tensor.device != self._device:
            raise StateError(f"{name} is on {tensor.device}, the engine on {self._device}")
        if tensor.dtype != dtype or tuple(tensor.shape) != shape:
            raise StateError(
                f"{name} is {tensor.dtype} {tuple(tensor.shape)}, the engine wants {dtype} {shape}"
            )
        if not tensor.is_contiguous():
            raise StateError(f"{name} must be a contiguous buffer (TensorRT binds by address)")

    # -- execution --------------------------------------------------------------------------
    def _run(self, key: tuple[int, int]) -> None:
        """Replay the graph of this (state, state_out) pair, or enqueue (and capture it)."""
        graph = self._graphs.get(key)
        if graph is not None:
            graph.replay()
            return
        self._enqueue()
        if self.cuda_graphs:
            self._capture(key)

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            errors = "; ".join(self._logger.take_errors()) or "no error logged"
            raise StateError(f"TensorRT execute_async_v3 failed: {errors}")

    def _capture(self, key: tuple[int, int]) -> None:
        """Capture one enqueue into a CUDA graph for later steps with these addresses."""
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: other threads' CUDA calls (a data loader) do not break the capture.
            with torch.cuda.graph(graph, stream=self._stream, capture_error_mode="thread_local"):
                ok = self._context.execute_async_v3(self._stream.cuda_stream)
        except RuntimeError as e:
            ok, reason = False, str(e).splitlines()[0]
        else:
            reason = "; ".join(self._logger.take_errors()) or "execute_async_v3 returned False"
        if not ok:
            logger.warning("CUDA graph capture failed (%s); running the engine eagerly", reason)
            self.cuda_graphs = False
            self._graphs.clear()
            return
        if len(self._graphs) >= _MAX_GRAPHS:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[key] = graph

    def _check_sticky(self) -> None:
        """Raise (and refuse all later work) when the stream reports a CUDA error."""
        try:
            self._stream.query()  # non-blocking; raises on an error recorded on the stream
        except RuntimeError as e:
            self._broken = (
                f"CUDA error during a TensorRT step ({str(e).splitlines()[0]}); the CUDA "
                "context is unusable, so this backend refuses further work: restart the process"
            )
            self._graphs.clear()
            raise StateError(self._broken) from e

    def synchronize(self) -> None:
        """Wait for the backend's stream (and surface any CUDA error it hit)."""
        try:
            self._stream.synchronize()
        finally:
            self._check_sticky()


def _engine(source, device: int, build_engine: bool) -> EngineBuild:
    """The engine to run: a loader's, else the one the artifact's manifest records for this
    GPU and TensorRT version (``export/artifact/engines.py``), built first only when asked."""
    if callable(source):
        return source()
    builder = EngineFromOnnx(source, device=device)
    if build_engine:
        return builder()
    found = builder.cached()
    if found is None:
        raise ArtifactError(
            f"{builder.artifact.root}: no TensorRT engine for this GPU and TensorRT version; "
            "build it with `pomexport build --backend trt` (or TrtBackend(..., "
            "build_engine=True))"
        )
    return found
