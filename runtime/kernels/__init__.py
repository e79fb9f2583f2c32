"""Accelerated PolyMixer kernels for the torch backend (Triton) and the ctypes harness of the
CUDA kernels (runtime/plugin). ``dispatch.poly_mixer`` picks one and falls back to the torch op.
Triton and CUDA are imported lazily: importing this package needs neither."""

from pomexport.runtime.kernels.dispatch import (
    choose_backend,
    install_cuda_kernel,
    poly_mixer,
    triton_available,
)

__all__ = ["choose_backend", "install_cuda_kernel", "poly_mixer", "triton_available"]
