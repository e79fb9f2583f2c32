"""A CUDA error inside the generation loop (sticky: the context is lost) makes the generator
raise one clear StateError and refuse all later work. Runs a real device-side assert in a
subprocess (the CUDA context of that process is unusable afterwards)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.gpu

SCRIPT = textwrap.dedent(
    """
    import torch
    from pomexport.errors import StateError
    from pomexport.models import load_model
    from pomexport.runtime.generator import VideoGenerator
    from pomexport.runtime.torch_backend import TorchBackend

    class Faulty(TorchBackend):
        calls = 0

        def step(self, io, state, count, state_out):
            Faulty.calls += 1
            super().step(io, state, count, state_out)
            if Faulty.calls == 5:  # out-of-bounds gather: a device-side assert, sticky
                torch.zeros(1, device="cuda")[torch.tensor([7], device="cuda")]
                torch.cuda.synchronize()

    gen = VideoGenerator(Faulty(load_model("tiny"), device="cuda"), steps=2)
    gen.start(0, label=1)
    try:
        list(gen.stream(4))
    except StateError as e:
        print("first:", e)
    try:
        list(gen.stream(1))
    except StateError as e:
        print("again:", e)
    """
)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (device-side assert)")
def test_cuda_error_refuses_further_work():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    lines = result.stdout.splitlines()
    assert any(line.startswith("first: CUDA error during generation") for line in lines), result
    assert any("again: CUDA error" in line and "restart the process" in line for line in lines)
