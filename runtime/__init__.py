"""Runtime: backends, the rectified-flow sampler, ``VideoGenerator`` and output writers.

Names are imported lazily so ``import pomexport.runtime`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pomexport.lazy import lazy_exports

_EXPORTS = {
    "Backend": "pomexport.runtime.backend",
    "StepBuffers": "pomexport.runtime.backend",
    "TorchBackend": "pomexport.runtime.torch_backend",
    "OrtBackend": "pomexport.runtime.ort_backend",
    "choose_backend": "pomexport.runtime.loading",
    "load_backend": "pomexport.runtime.loading",
    "StateBuffers": "pomexport.runtime.state",
    "StreamSlot": "pomexport.runtime.state",
    "Frame": "pomexport.runtime.generator",
    "VideoGenerator": "pomexport.runtime.generator",
    "frame_noise": "pomexport.runtime.generator",
    "generate": "pomexport.runtime.api",
    "generate_frames": "pomexport.runtime.api",
    "decode_frames": "pomexport.runtime.decoding",
    "load_decoder": "pomexport.runtime.decoding",
    "ClipResult": "pomexport.runtime.clip",
    "generate_clip": "pomexport.runtime.clip",
    "GenerateOptions": "pomexport.runtime.options",
    "SamplerSettings": "pomexport.runtime.options",
    "open_video": "pomexport.runtime.writers",
    "VideoSink": "pomexport.runtime.writers",
    "write_video": "pomexport.runtime.writers",
    "SAMPLERS": "pomexport.runtime.sampler",
    "euler_update": "pomexport.runtime.sampler",
    "guided_velocity": "pomexport.runtime.sampler",
    "heun_update": "pomexport.runtime.sampler",
    "sample": "pomexport.runtime.sampler",
    "shift_time": "pomexport.runtime.sampler",
    "time_schedule": "pomexport.runtime.sampler",
}

__all__ = [
    "Backend",
    "ClipResult",
    "Frame",
    "GenerateOptions",
    "OrtBackend",
    "SAMPLERS",
    "SamplerSettings",
    "StateBuffers",
    "StepBuffers",
    "StreamSlot",
    "TorchBackend",
    "VideoGenerator",
    "VideoSink",
    "choose_backend",
    "decode_frames",
    "euler_update",
    "frame_noise",
    "generate",
    "generate_clip",
    "generate_frames",
    "guided_velocity",
    "heun_update",
    "load_backend",
    "load_decoder",
    "open_video",
    "sample",
    "shift_time",
    "time_schedule",
    "write_video",
]

if TYPE_CHECKING:
    from pomexport.runtime.api import generate, generate_frames
    from pomexport.runtime.backend import Backend, StepBuffers
    from pomexport.runtime.clip import ClipResult, generate_clip
    from pomexport.runtime.decoding import decode_frames, load_decoder
    from pomexport.runtime.generator import Frame, VideoGenerator, frame_noise
    from pomexport.runtime.loading import choose_backend, load_backend
    from pomexport.runtime.options import GenerateOptions, SamplerSettings
    from pomexport.runtime.ort_backend import OrtBackend
    from pomexport.runtime.sampler import (
        SAMPLERS,
        euler_update,
        guided_velocity,
        heun_update,
        sample,
        shift_time,
        time_schedule,
    )
    from pomexport.runtime.state import StateBuffers, StreamSlot
    from pomexport.runtime.torch_backend import TorchBackend
    from pomexport.runtime.writers import VideoSink, open_video, write_video

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
