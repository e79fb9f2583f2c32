"""What commands print and write besides their own result lines: stderr progress, JSON reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click


def to_stderr(line: str) -> None:
    """A progress line: stderr, so stdout holds only the result."""
    click.echo(line, err=True)


def timed() -> Callable[[str], None]:
    """A progress callback echoing each line to stderr with the seconds since it was made."""
    start = time.monotonic()
    return lambda message: to_stderr(f"[{time.monotonic() - start:6.1f}s] {message}")


def write_json(report: dict, out: str | Path | None, indent: int = 2, echo: bool = False) -> str:
    """``report`` as JSON: written atomically to ``out`` (named on stderr), else printed;
    ``echo`` prints it also when written. Returns the text."""
    text = json.dumps(report, indent=indent) + "\n"
    if out is not None:
        from pomexport.export.artifact.atomic import atomic_write

        atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text))
        to_stderr(f"wrote {out}")
    if out is None or echo:
        click.echo(text, nl=False)
    return text
