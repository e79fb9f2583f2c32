"""The CLI group turns the environment's refusals into one line (issue 22): a real allocation
too large for this machine, a file it may not write. Commands of a throwaway group with the
real error handling (``cli/main.py::_Group``)."""

from __future__ import annotations

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pomexport.cli.main import _Group


@click.group(cls=_Group)
def group() -> None:
    pass


@group.command("torch-alloc")
def torch_alloc() -> None:
    torch.empty(1 << 42)  # 16 TiB of fp32: the CPU allocator refuses


@group.command("numpy-alloc")
def numpy_alloc() -> None:
    np.ones((1 << 20, 1 << 22))  # 32 TiB: numpy's MemoryError


@group.command("write")
def write() -> None:
    open("/sys/pomexport-cannot-write-here", "w")  # refused: no handle to close


@group.command("bug")
def bug() -> None:
    raise RuntimeError("a bug, not the user's error")


@pytest.mark.parametrize(
    "command, message",
    [
        ("torch-alloc", "Error: out of memory: tried to allocate 16384.0 GiB"),
        ("numpy-alloc", "Error: out of memory: "),
        ("write", "Error: Permission denied: /sys/pomexport-cannot-write-here"),
    ],
)
def test_environment_errors_are_one_line(command, message):
    result = CliRunner().invoke(group, [command])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_other_errors_still_raise():
    """Only the environment's refusals become one line: a bug keeps its traceback."""
    result = CliRunner().invoke(group, ["bug"])
    assert isinstance(result.exception, RuntimeError)
