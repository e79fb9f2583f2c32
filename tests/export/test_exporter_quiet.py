"""export/_exporter_quiet.py: torch.onnx.export's torchvision notes are not shown, its other
log lines are."""

from __future__ import annotations

import logging

from pomexport.export._exporter_quiet import _REGISTRY_LOGGER, exporter_quiet


def test_the_filter_sits_on_the_logger_torch_registers_ops_with():
    from torch.onnx._internal.exporter import _registration

    assert _registration.logger.name == _REGISTRY_LOGGER


def test_torchvision_notes_are_dropped_inside_and_other_lines_kept():
    """A handler of our own on the logger, at WARNING: the suite's fixtures quiet torch.onnx's
    loggers (tests/conftest.py), and caplog may not see torch's records."""
    from torch.onnx._internal.exporter import _registration

    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())
    note = "torchvision is not installed. Skipping torchvision::nms"
    level = _registration.logger.level
    _registration.logger.setLevel(logging.WARNING)
    _registration.logger.addHandler(handler)
    try:
        with exporter_quiet():
            _registration.logger.warning(note)
            _registration.logger.warning("a real problem")
        _registration.logger.warning(note)  # outside: as torch logs it
    finally:
        _registration.logger.removeHandler(handler)
        _registration.logger.setLevel(level)
    assert seen == ["a real problem", note]
