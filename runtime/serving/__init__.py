"""Serving with NVIDIA Triton Inference Server: a model repository whose sequence batcher maps
video streams onto the :class:`~pomexport.runtime.generator.VideoGenerator`'s slots, a
launcher for ``tritonserver``, and a ``tritonclient`` streaming client (issue 9)."""

from pomexport.runtime.serving.repository import MODEL_NAME, RepoOptions, write_repository
from pomexport.runtime.serving.server import ServerError, TritonServer, find_tritonserver

__all__ = [
    "MODEL_NAME",
    "RepoOptions",
    "ServerError",
    "TritonServer",
    "find_tritonserver",
    "write_repository",
]
