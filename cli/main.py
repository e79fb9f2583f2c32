"""The ``pomexport`` command: a thin click shell over the Python API.

Every module in this folder that defines ``command`` (a click command) is a subcommand, so
components add commands without editing this file. Commands import heavy dependencies
(onnx, onnxruntime, tensorrt) inside their function bodies, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys

import click

from pomexport import __version__
from pomexport.errors import PomExportError


class _Group(click.Group):
    """Turns a PomExportError into one line on stderr and exit status 1 (no traceback); so are
    the user's environment's refusals: out of memory at an allocation (a request too large
    for this machine) and an OSError from a file the command was told to use."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PomExportError as e:
            raise click.ClickException(str(e)) from e
        except MemoryError as e:  # numpy's _ArrayMemoryError included
            raise click.ClickException(f"out of memory: {_first_line(e)}") from e
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            raise click.ClickException(f"{e.strerror or _first_line(e)}{where}") from e
        except RuntimeError as e:
            if not _out_of_memory(e):
                raise
            raise click.ClickException(f"out of memory: {_allocation(e)}") from e
        finally:
            # A command's --trusted-key ends with it (CliRunner reuse). Only when a command
            # loaded the module: importing pomexport.export costs torch's import time.
            signing = sys.modules.get("pomexport.export.artifact.signing")
            if signing is not None:
                signing.use_trusted_keys(None)


# How torch (CPU allocator, CUDA) and ONNX Runtime word a failed allocation.
_OOM = re.compile(r"can't allocate memory|out of memory|failed to allocate memory", re.I)


def _out_of_memory(error: RuntimeError) -> bool:
    return type(error).__name__ == "OutOfMemoryError" or bool(_OOM.search(str(error)))


def _allocation(error: BaseException) -> str:
    """``tried to allocate N bytes`` when the message says so, else its first line."""
    match = re.search(r"tried to allocate (\d+) bytes", str(error))
    if match:
        return f"tried to allocate {int(match.group(1)) / 2**30:.1f} GiB"
    return _first_line(error)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _discover(group: click.Group) -> None:
    import pomexport.cli as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "main":
            continue
        module = importlib.import_module(f"pomexport.cli.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            group.add_command(command)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pomexport")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """pomexport: export PoM-DiT video diffusion models to ONNX/TensorRT and run them
    frame by frame with a constant-memory recurrent state.

    Run `pomexport COMMAND --help` for the options of each command.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


_discover(cli)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="pomexport", standalone_mode=True))
