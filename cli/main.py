"""The ``pomexport`` command: a thin click shell over the Python API.

Every module in this folder that defines ``command`` (a click command) is a subcommand, so
components add commands without editing this file. Commands import heavy dependencies
(onnx, onnxruntime, tensorrt) inside their function bodies, so ``--help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import click

from pomexport import __version__
from pomexport.errors import PomExportError


class _Group(click.Group):
    """Turns a PomExportError into one line on stderr and exit status 1 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PomExportError as e:
            raise click.ClickException(str(e)) from e


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
