"""Run the plugin's CUDA kernels on torch CUDA tensors through ctypes (no TensorRT needed).

For a GPU machine: compile ``runtime/plugin/polyMixerKernel.cu`` + ``polyMixerCApi.cpp`` into
``libpomexport_polymixer.so`` with nvcc (or point at the CMake target of the same name), call
``polymixer_forward`` on the tensors' device pointers, compare with
``torch.ops.pomexport.poly_mixer`` and measure the kernels' bandwidth against a device copy::

    python -m pomexport.runtime.kernels.cuda_harness      # logs one line per case

Nothing here runs without a CUDA GPU; the CPU machine only compiles the kernels
(tests/runtime/test_plugin_compile.py).
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pomexport.errors import PluginError
from pomexport.export.artifact.contract import MixerAttrs
from pomexport.models.config import GATES, VARIANTS
from pomexport.models.poly_mixer_op import MixerKernel, mix

logger = logging.getLogger(__name__)

PLUGIN_DIR = Path(__file__).resolve().parent.parent / "plugin"
KERNEL_SOURCES = ("polyMixerKernel.cu", "polyMixerCApi.cpp")
LIBRARY_NAME = "libpomexport_polymixer.so"
_DTYPES = {torch.float32: 0, torch.float16: 1}


def nvcc_command(output: Path, archs: list[str]) -> list[str]:
    """The nvcc call that builds the ctypes library for SM numbers like ``["90"]``."""
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    sources = [str(PLUGIN_DIR / s) for s in KERNEL_SOURCES]
    return [
        "nvcc", "-std=c++17", "-O3", "-shared", "-Xcompiler", "-fPIC,-fvisibility=hidden",
        *gencode, "-I", str(PLUGIN_DIR), *sources, "-o", str(output),
    ]  # fmt: skip


def build_library(out_dir: Path, archs: list[str] | None = None) -> Path:
    """Compile the kernels for ``archs`` (default: the current GPU's SM) into ``out_dir``."""
    if shutil.which("nvcc") is None:
        raise PluginError("nvcc not found: install the CUDA toolkit to build the kernel library")
    if archs is None:
        major, minor = torch.cuda.get_device_capability()
        archs = [f"{major}{minor}"]
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / LIBRARY_NAME
    run = subprocess.run(nvcc_command(output, archs), capture_output=True, text=True)
    if run.returncode != 0:
        raise PluginError(f"nvcc failed building {output}:\n{run.stderr[-4000:]}")
    return output


class CudaPolyMixer:
    """A PolyMixer kernel ``(h, g, state, count, coeff, attrs)`` running the CUDA kernels via
    ctypes (``as_op_kernel`` makes it the op's CUDA kernel)."""

    def __init__(self, library: Path) -> None:
        self._lib = ctypes.CDLL(str(library))
        ptr, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int32
        self._lib.polymixer_forward.argtypes = [ptr] * 8 + [i64] * 3 + [i32] * 5 + [ptr]
        self._lib.polymixer_forward.restype = i32
        self._lib.polymixer_workspace_size.argtypes = [i64] * 3
        self._lib.polymixer_workspace_size.restype = ctypes.c_size_t
        self._lib.polymixer_error_string.argtypes = [i32]
        self._lib.polymixer_error_string.restype = ctypes.c_char_p

    def __call__(
        self,
        h: Tensor,
        g: Tensor,
        state: Tensor,
        count: Tensor,
        coeff: Tensor | None,
        attrs: MixerAttrs,
    ) -> tuple[Tensor, Tensor]:
        """Returns ``(y, state_out)`` like the torch op; raises PluginError on a kernel error."""
        if not h.is_cuda or h.dtype not in _DTYPES:
            raise PluginError("the CUDA kernels take fp32/fp16 CUDA tensors")
        h, g = h.contiguous(), g.to(h.dtype).contiguous()
        state, count = state.float().contiguous(), count.float().contiguous()
        coeff = coeff.float().contiguous() if coeff is not None else None
        batch, tokens, channels = h.shape
        y = torch.empty_like(h)
        state_out = torch.empty_like(state)
        size = self._lib.polymixer_workspace_size(batch, tokens, channels)
        workspace = torch.empty(max(size, 4), dtype=torch.uint8, device=h.device)
        code = self._lib.polymixer_forward(
            h.data_ptr(), g.data_ptr(), state.data_ptr(), count.data_ptr(),
            coeff.data_ptr() if coeff is not None else None,
            y.data_ptr(), state_out.data_ptr(), workspace.data_ptr(),
            batch, tokens, channels,
            _DTYPES[h.dtype], VARIANTS.index(attrs.variant), attrs.order,
            GATES.index(attrs.gate), attrs.sel_heads,
            torch.cuda.current_stream(h.device).cuda_stream,
        )  # fmt: skip
        if code != 0:
            raise PluginError(f"polymixer_forward failed: {self._lib.polymixer_error_string(code)}")
        return y, state_out


@dataclass(frozen=True)
class KernelReport:
    """One case: max errors against the torch op and bandwidth against a device copy."""

    case: str
    max_abs_y: float
    max_rel_state: float
    passed: bool
    gbps: float
    copy_gbps: float

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        verdict = "ok" if self.passed else "MISMATCH"
        return (
            f"{self.case}: {verdict} max|dy|={self.max_abs_y:.2e} "
            f"max rel d(state)={self.max_rel_state:.2e}; {self.gbps:.0f} GB/s "
            f"= {self.gbps / self.copy_gbps:.0%} of copy ({self.copy_gbps:.0f} GB/s)"
        )


def _time_ms(fn, iters: int = 50) -> float:
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def bytes_moved(h: torch.Tensor, g: torch.Tensor) -> int:
    """Minimum traffic of the op: read h and g, write y (the state I/O is negligible)."""
    return h.numel() * h.element_size() * 2 + g.numel() * g.element_size()


def copy_bandwidth_gbps(nbytes: int, device: torch.device) -> float:
    """Device-to-device copy bandwidth for a buffer of ``nbytes`` (read + write counted)."""
    src = torch.empty(nbytes // 2, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * src.numel() / _time_ms(lambda: dst.copy_(src)) / 1e6


def compare(kernel: MixerKernel, inputs: tuple, attrs: MixerAttrs, case: str) -> KernelReport:
    """Run one case through ``kernel`` (CUDA or Triton) and the torch op; tolerances per dtype."""
    y, state_out = kernel(*inputs, attrs)
    y_ref, state_ref = mix(*inputs, attrs)
    atol = 2e-3 if inputs[0].dtype == torch.float16 else 1e-5
    max_abs_y = (y.float() - y_ref.float()).abs().max().item() if y.numel() else 0.0
    scale = state_ref.abs().max().item() + 1.0
    max_rel_state = (state_out - state_ref).abs().max().item() / scale
    y_scale = y_ref.float().abs().max().item() + 1.0
    passed = max_abs_y <= atol * y_scale and max_rel_state <= 1e-5
    ms = _time_ms(lambda: kernel(*inputs, attrs))
    nbytes = bytes_moved(inputs[0], inputs[1])
    copy_gbps = copy_bandwidth_gbps(nbytes, y.device)
    return KernelReport(case, max_abs_y, max_rel_state, passed, nbytes / ms / 1e6, copy_gbps)


def make_case(attrs: MixerAttrs, dtype: torch.dtype, shape=(8, 4096, 1152)) -> tuple:
    """Random CUDA inputs ``(h, g, state, count, coeff)`` of a PoM-DiT-sized layer (B, N, C)."""
    b, n, c = shape
    gen = torch.Generator(device="cuda").manual_seed(0)
    h = torch.randn(b, n, c, device="cuda", generator=gen).to(dtype)
    g = torch.randn(b, n, attrs.gate_width(c), device="cuda", generator=gen).to(dtype)
    state = torch.randn(b, c, device="cuda", generator=gen)
    count = torch.full((b,), 512.0, device="cuda")
    powers = attrs.variant == "powers"
    coeff = torch.randn(c, attrs.order, device="cuda", generator=gen) if powers else None
    return h, g, state, count, coeff


REPORT_CASES = (
    MixerAttrs("moments", 2, "sigmoid", 0),
    MixerAttrs("moments", 4, "sigmoid", 0),
    MixerAttrs("powers", 2, "hardsigmoid", 0),
    MixerAttrs("powers", 4, "hardsigmoid", 16),
)


def run_report(kernel: MixerKernel, name: str) -> list[KernelReport]:
    """Both variants, both dtypes, orders 2 and 4, one selection-head case."""
    reports = []
    for attrs in REPORT_CASES:
        for dtype in (torch.float32, torch.float16):
            inputs = make_case(attrs, dtype)
            case = (
                f"{name} {attrs.variant} k={attrs.order} heads={attrs.sel_heads}"
                f" {str(dtype).removeprefix('torch.')}"
            )
            reports.append(compare(kernel, inputs, attrs, case))
    return reports


if __name__ == "__main__":
    import tempfile

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pomexport.runtime.kernels.dispatch import _triton_module

    with tempfile.TemporaryDirectory() as tmp:
        kernels = {"cuda": CudaPolyMixer(build_library(Path(tmp)))}
        if _triton_module() is not None:
            kernels["triton"] = _triton_module().poly_mixer_triton
        for name, kernel in kernels.items():
            for report in run_report(kernel, name):
                logger.info("%s", report)
