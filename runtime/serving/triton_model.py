"""The Triton Python-backend model: one request = the next frame of one stream (sequence).

Loaded by the ``model.py`` that :func:`~pomexport.runtime.serving.repository.write_repository`
puts in the repository (Triton's Python-backend stub imports that file, and it imports this
module, handing over ``triton_python_backend_utils``). Every request of one ``execute`` call
belongs to a different sequence (the sequence batcher guarantees it), so they run as one
batched :meth:`~pomexport.runtime.generator.VideoGenerator.advance` over their slots.

Request inputs: the control tensors START, END, CORRID (READY is implied by the request being
here); LABEL, SEED and STREAM (optional, read on START: class label, noise seed and stream
number of ``frame_noise(seed, stream, frame)``). Outputs: LATENT fp32 [C_in, H, W], FRAME
uint8 [H, W, C_in] (``round((x + 1) * 127.5)``) and FRAME_INDEX int64 [1].
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from pomexport.errors import PomExportError
from pomexport.runtime.serving.slots import SlotTable

logger = logging.getLogger(__name__)

ARTIFACT_DIR = "artifact"  # inside the model's version folder


def _scalar(pb, request, name: str, default: int | None = None) -> int | None:
    tensor = pb.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    return int(np.asarray(tensor.as_numpy()).reshape(-1)[0])


def _parameters(model_config: dict) -> dict[str, str]:
    params = model_config.get("parameters", {})
    return {k: v["string_value"] for k, v in params.items()}


def to_uint8(latent: np.ndarray) -> np.ndarray:
    """(C, H, W) latent in [-1, 1] -> (H, W, C) uint8 pixels."""
    pixels = np.clip(np.round((latent + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))


class StreamModel:
    """Base of the repository's ``TritonPythonModel``; ``pb`` is triton_python_backend_utils."""

    pb = None  # set by the model.py template

    def initialize(self, args: dict) -> None:
        from pomexport.runtime.generator import VideoGenerator
        from pomexport.runtime.loading import load_backend

        config = json.loads(args["model_config"])
        params = _parameters(config)
        threads = int(params.get("threads", "0"))
        if threads > 0:
            torch.set_num_threads(threads)
        artifact = Path(args["model_repository"]) / args["model_version"] / ARTIFACT_DIR
        backend = load_backend(artifact, backend=params.get("backend", "ort"), device="auto")
        slots = int(config["max_batch_size"])
        self.generator = VideoGenerator(
            backend,
            slots=slots,
            steps=int(params.get("steps", "20")),
            cfg_scale=float(params.get("cfg_scale", "1.0")),
            sampler=params.get("sampler", "euler"),
            shift=float(params.get("shift", "1.0")),
        )
        self.table = SlotTable(slots, float(params.get("idle_timeout_s", "60")))
        logger.info("pomexport stream model: %d slots on %s", slots, backend.name)

    def execute(self, requests: list) -> list:
        """One batched frame for every request; a failing request gets an error response."""
        for slot in self.table.reap():
            self.generator.reset(slot)
        responses: list = [None] * len(requests)
        plan: dict[int, tuple[int, bool]] = {}  # request index -> (slot, end)
        for i, request in enumerate(requests):
            try:
                plan[i] = self._admit(request)
            except PomExportError as e:
                responses[i] = self.pb.InferenceResponse(error=self.pb.TritonError(str(e)))
        if plan:
            frames = {f.slot: f for f in self.generator.advance([s for s, _ in plan.values()])}
            for i, (slot, end) in plan.items():
                responses[i] = self._response(frames[slot])
                if end:
                    self._end(requests[i])
        return responses

    def _admit(self, request) -> tuple[int, bool]:
        """The slot that serves ``request`` (starting its stream on START) and its END flag."""
        corrid = _scalar(self.pb, request, "CORRID")
        end = bool(_scalar(self.pb, request, "END", 0))
        if not _scalar(self.pb, request, "START", 0):
            return self.table.slot(corrid), end
        slot, restart = self.table.start(corrid)
        if restart or self.generator.slots[slot] is not None:
            self.generator.reset(slot)
        try:
            self.generator.start(
                slot,
                label=_scalar(self.pb, request, "LABEL", self.generator.config.num_classes),
                seed=_scalar(self.pb, request, "SEED", 0),
                stream=_scalar(self.pb, request, "STREAM", 0),
            )
        except PomExportError:
            self.table.end(corrid)
            raise
        return slot, end

    def _end(self, request) -> None:
        slot = self.table.end(_scalar(self.pb, request, "CORRID"))
        if slot is not None:
            self.generator.reset(slot)

    def _response(self, frame):
        latent = frame.latent.float().cpu().numpy()
        return self.pb.InferenceResponse(
            output_tensors=[
                # Each request is a batch of one: every output carries that batch axis.
                self.pb.Tensor("LATENT", latent[None]),
                self.pb.Tensor("FRAME", to_uint8(latent)[None]),
                self.pb.Tensor("FRAME_INDEX", np.array([[frame.index]], dtype=np.int64)),
            ]
        )

    def finalize(self) -> None:
        logger.info("pomexport stream model unloaded")
