"""The BLS frame loop of the GPU path: one request = the next frame of one stream, computed by
sending every denoising step and the commit step to ``pomdit_step`` (implicit state, see
:mod:`pomexport.runtime.serving.implicit_state`) in the same sequence.

Requests and outputs are those of the Python-backend stream model (START/END/CORRID controls,
LABEL/SEED/STREAM on START; LATENT, FRAME, FRAME_INDEX). The requests of one ``execute``
run concurrently (``async``), so the step model's sequence batcher batches the steps of
every stream. Euler sampler, no classifier-free guidance (the unconditional branch would need
a second sequence per stream).

Not run in this repository's tests: the tritonserver of the ``nvidia-pytriton`` wheel has
only the Python backend (no ``onnxruntime`` backend); see the README's Serving section.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np

from pomexport.errors import PomExportError
from pomexport.runtime.generator import frame_noise
from pomexport.runtime.sampler import time_schedule
from pomexport.runtime.serving.slots import SlotTable
from pomexport.runtime.serving.triton_model import _parameters, _scalar, to_uint8
from pomexport.runtime.state import StreamSlot


class FramesModel:
    """Base of the BLS model's ``TritonPythonModel``; ``pb`` is triton_python_backend_utils."""

    pb = None  # set by the model.py template

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = _parameters(config)
        self.step_model = params.get("step_model", "pomdit_step")
        self.times = [float(t) for t in time_schedule(int(params["steps"]))]
        self.shape = tuple(int(d) for d in config["output"][0]["dims"])  # LATENT (C, H, W)
        self.null_label = int(params["null_label"])
        self.table = SlotTable(int(config["max_batch_size"]), float(params["idle_timeout_s"]))
        self.streams: dict[int, StreamSlot] = {}

    async def execute(self, requests: list) -> list:
        for corrid in [c for c in self.streams if c not in self.table]:
            del self.streams[corrid]
        self.table.reap()
        return list(await asyncio.gather(*(self._frame(r) for r in requests)))

    async def _frame(self, request):
        try:
            corrid, item, start = self._admit(request)
            x = frame_noise(item.seed, item.stream, item.frame, self.shape)[None]
            flags = self.pb.TRITONSERVER_REQUEST_FLAG_SEQUENCE_START if start else 0
            for t, t_next in zip(self.times[:-1], self.times[1:], strict=True):
                v = await self._step(corrid, x, t, item.label, 0.0, flags)
                x = x + (t_next - t) * v
                flags = 0
            end = bool(_scalar(self.pb, request, "END", 0))
            end_flag = self.pb.TRITONSERVER_REQUEST_FLAG_SEQUENCE_END if end else 0
            await self._step(corrid, x, 0.0, item.label, 1.0, flags | end_flag)
        except PomExportError as e:
            return self.pb.InferenceResponse(error=self.pb.TritonError(str(e)))
        self.streams[corrid] = item.advanced()
        if end:
            self.table.end(corrid)
            del self.streams[corrid]
        latent = x[0].astype(np.float32)
        return self.pb.InferenceResponse(
            output_tensors=[
                self.pb.Tensor("LATENT", latent[None]),
                self.pb.Tensor("FRAME", to_uint8(latent)[None]),
                self.pb.Tensor("FRAME_INDEX", np.array([[item.frame]], dtype=np.int64)),
            ]
        )

    def _admit(self, request) -> tuple[int, StreamSlot, bool]:
        corrid = _scalar(self.pb, request, "CORRID")
        if not _scalar(self.pb, request, "START", 0):
            self.table.slot(corrid)  # StateError for an unknown sequence
            return corrid, self.streams[corrid], False
        self.table.start(corrid)
        item = StreamSlot(
            stream=_scalar(self.pb, request, "STREAM", 0),
            seed=_scalar(self.pb, request, "SEED", 0),
            label=_scalar(self.pb, request, "LABEL", self.null_label),
        )
        self.streams[corrid] = item
        return corrid, item, True

    async def _step(self, corrid: int, x: np.ndarray, t: float, label: int, commit: float, flags):
        pb = self.pb
        inputs = [
            pb.Tensor("X_T", x.astype(np.float32)),
            pb.Tensor("T", np.array([[t]], dtype=np.float32)),
            pb.Tensor("LABEL", np.array([[label]], dtype=np.int64)),
            pb.Tensor("COMMIT", np.array([[commit]], dtype=np.float32)),
        ]
        request = pb.InferenceRequest(
            model_name=self.step_model,
            inputs=inputs,
            requested_output_names=["V"],
            correlation_id=corrid,
            flags=flags,
        )
        response = await request.async_exec()
        if response.has_error():
            raise PomExportError(f"{self.step_model}: {response.error().message()}")
        return pb.get_output_tensor_by_name(response, "V").as_numpy().astype(np.float32)
