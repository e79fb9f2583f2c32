"""export/_exporter_quiet.py: torch.onnx.export's torchvision notes are not shown, its other
log lines are."""

from __future__ import annotations

import logging

from pomexport.export._exporter_quiet import _REGISTRY_LOGGER, exporter_quiet


def test_the_filter_sits_on_the_logger_torch_registers_ops_with():
    from torch.onnx._internal.exporter import _registration

    assert _registration.logger.name == _REGISTRY_LOGGER


def test_torchvision_notes_are_dropped_inside_and_other_lines_kept(caplog):
    from torch.onnx._internal.exporter import _registration

    note = "torchvision is not installed. Skipping torchvision::nms"
    with caplog.at_level(logging.WARNING, logger=_REGISTRY_LOGGER):
        with exporter_quiet():
            _registration.logger.warning(note)
            _registration.logger.warning("a real problem")
        _registration.logger.warning(note)  # outside: as torch logs it
    assert [r.getMessage() for r in caplog.records] == ["a real problem", note]
