"""TensorRT's builder progress as tqdm bars, and its log as Python logging.

Imports ``tensorrt`` at module import: only ``export/engine/builder.py`` and
``runtime/trt_backend.py`` import this module, after checking TensorRT is there.
"""

from __future__ import annotations

import logging
import threading

import tensorrt as trt

logger = logging.getLogger(__name__)

_LEVELS = {
    trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
    trt.ILogger.Severity.ERROR: logging.ERROR,
    trt.ILogger.Severity.WARNING: logging.WARNING,
    trt.ILogger.Severity.INFO: logging.DEBUG,  # TensorRT's INFO is build chatter
    trt.ILogger.Severity.VERBOSE: logging.DEBUG,
}
_ERRORS_KEPT = 20


class TrtLogger(trt.ILogger):
    """Forwards TensorRT's messages to ``logging`` and keeps the last errors, so a failed
    build or enqueue can say why in its one-line exception."""

    def __init__(self) -> None:
        trt.ILogger.__init__(self)
        self._lock = threading.Lock()
        self._errors: list[str] = []

    def log(self, severity, msg: str) -> None:  # noqa: D102 (TensorRT's interface)
        level = _LEVELS.get(severity, logging.INFO)
        logger.log(level, "TensorRT: %s", msg)
        if level >= logging.ERROR:
            with self._lock:
                self._errors = [*self._errors[-(_ERRORS_KEPT - 1) :], msg.strip()]

    def take_errors(self) -> list[str]:
        """The errors logged since the last call (oldest first), and forget them."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors


_LOGGER: TrtLogger | None = None


def trt_logger() -> TrtLogger:
    """The process's one TensorRT logger (TensorRT uses the logger of the first builder or
    runtime for the whole process, so every builder and runtime here shares this one)."""
    global _LOGGER
    if _LOGGER is None:
        _LOGGER = TrtLogger()
    return _LOGGER


class TqdmProgressMonitor(trt.IProgressMonitor):
    """One tqdm bar per builder phase, nested bars for nested phases.

    TensorRT calls the monitor from several internal threads, hence the lock. ``cancel()``
    makes the next ``step_complete`` return False, which asks TensorRT to stop the build.
    """

    def __init__(self, enabled: bool = True) -> None:
        trt.IProgressMonitor.__init__(self)
        self._enabled = enabled
        self._lock = threading.Lock()
        self._bars: dict[str, object] = {}
        self._cancelled = False

    def cancel(self) -> None:
        """Ask TensorRT to stop the build at its next step."""
        self._cancelled = True

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        from tqdm.auto import tqdm

        with self._lock:
            depth = len(self._bars)
            self._bars[phase_name] = tqdm(
                total=num_steps,
                desc=phase_name,
                position=depth,
                leave=depth == 0,
                disable=not self._enabled,
                unit="step",
            )
        logger.debug("TensorRT phase %s started (%d steps)", phase_name, num_steps)

    def step_complete(self, phase_name: str, step: int) -> bool:
        with self._lock:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)  # steps are 0-based and may be skipped
        return not self._cancelled

    def phase_finish(self, phase_name: str) -> None:
        with self._lock:
            bar = self._bars.pop(phase_name, None)
        if bar is not None:
            bar.close()
