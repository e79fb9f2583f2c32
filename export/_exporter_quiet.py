"""Quiet ``torch.onnx.export``: what it says that is not ours to act on.

Its deprecation warnings, and its op registry's lines on first use, four per process:
``torchvision is not installed. Skipping torchvision::nms`` (we trace no torchvision op and
do not depend on it), which reached every ``pomexport build`` in torch's own log format.
Anything else the exporter logs still reaches the user.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_REGISTRY_LOGGER = "torch.onnx._internal.exporter._registration"


class _NoTorchvisionNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextmanager
def exporter_quiet() -> Iterator[None]:
    """Inside: the exporter's warnings and its torchvision notes are not shown."""
    registry = logging.getLogger(_REGISTRY_LOGGER)
    note = _NoTorchvisionNote()
    registry.addFilter(note)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not ours
            yield
    finally:
        registry.removeFilter(note)
