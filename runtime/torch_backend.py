"""The reference backend: the PyTorch PoM-DiT's ``step`` under ``torch.inference_mode()``."""

from __future__ import annotations

import logging

import torch

from pomexport.errors import ConfigError
from pomexport.models.config import PoMDiTConfig
from pomexport.models.pom_dit import PoMDiT
from pomexport.runtime.backend import StepBuffers, allocate_like
from pomexport.runtime.choices import DEVICES

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one fails."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but torch sees no CUDA GPU")
    if name.split(":")[0] not in DEVICES:
        raise ConfigError(f"unknown device {name!r}; known: {', '.join(DEVICES)}")
    return torch.device(name)


class TorchBackend:
    """Runs :meth:`PoMDiT.step` in eager PyTorch on CPU or CUDA (fp32 unless the model isn't)."""

    name = "torch"

    def __init__(self, model: PoMDiT, device: str | torch.device = "cpu") -> None:
        self._device = resolve_device(device)
        self.model = model.eval().to(self._device)
        self._dtype = next(model.parameters()).dtype
        logger.info("torch backend on %s (%s)", self._device, self._dtype)

    @property
    def config(self) -> PoMDiTConfig:
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def allocate(self, batch: int) -> StepBuffers:
        """Zeroed step I/O for ``batch`` rows on this backend's device."""
        return allocate_like(self.config, batch, self._device, self._dtype)

    def step(
        self,
        io: StepBuffers,
        state: torch.Tensor,
        count: torch.Tensor,
        state_out: torch.Tensor,
    ) -> None:
        """One step graph evaluation into ``io.v`` and ``state_out`` (see ``Backend.step``)."""
        with torch.inference_mode():
            v, s = self.model.step(io.x_t, io.t, io.label, io.frame_index, state, count)
            io.v.copy_(v)
            state_out.copy_(s)
