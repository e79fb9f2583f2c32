"""Why a ``tritonserver`` did not start, read from its log.

The log of a server that failed ends with the model status table and a shutdown sequence;
the line that says why (``failed to load 'pomdit_stream' version 1: Internal:
ModuleNotFoundError: ...``) is one error line among them, with the Python stub's traceback
folded into it as escaped newlines. :func:`failure_summary` keeps the error lines, each cut
at its first newline, so the cause fits in one line of an error message.
"""

from __future__ import annotations

import json
import re

# glog prefix: severity, date, time, thread, source:line]
_ERROR = re.compile(r"^E\d{4} \S+\s+\d+ [^\]]+\] (?P<message>.*)$")
# Error lines every CPU-only server prints, unrelated to why one fails.
_NOISE = ("CudaDriverHelper has not been initialized",)
MAX_CHARS = 1500


def _first_line(message: str) -> str:
    """The message's first line: recent servers quote it JSON-style (newlines escaped)."""
    if len(message) > 1 and message[0] == message[-1] == '"':
        try:
            message = json.loads(message)
        except ValueError:
            message = message[1:-1].replace("\\n", "\n")
    return message.strip().split("\n", 1)[0].strip()


def error_lines(log: str) -> list[str]:
    """The log's error lines (``E...`` entries and the final ``error: ...``), first lines
    only, noise and repeats dropped, in log order."""
    found: list[str] = []
    for line in log.splitlines():
        match = _ERROR.match(line)
        if match:
            message = _first_line(match["message"])
        elif line.startswith("error: "):
            message = line.strip()
        else:
            continue
        if message and not any(n in message for n in _NOISE) and message not in found:
            found.append(message)
    return found


def failure_summary(log: str) -> str:
    """One line naming why the server failed: its error lines joined by ``; ``, or the log's
    last line when it has none (killed by a signal, say)."""
    lines = error_lines(log)
    if not lines:
        last = [ln.strip() for ln in log.splitlines() if ln.strip()]
        lines = [f"no error in the log, whose last line is {last[-1]!r}" if last else "empty log"]
    summary = "; ".join(lines)
    return summary if len(summary) <= MAX_CHARS else summary[: MAX_CHARS - 3] + "..."
