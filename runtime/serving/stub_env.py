"""The Python environment the Triton Python-backend stub runs models in.

The stubs shipped in the ``nvidia-pytriton`` 0.7 wheel are built against numpy 1: under
numpy 2 they pass garbled input tensors and return empty outputs (measured here: an echo
model received ``[1, 1]`` for ``[1, 2]`` and answered zero bytes). The stub runs an isolated
interpreter (``PYTHONPATH`` is ignored) found through ``PATH``, so when this Python has
numpy >= 2 we give the stub a virtual environment that sees every package of this one
(``--system-site-packages``) but its own numpy < 2, and put its ``bin`` first on ``PATH``.
Created once, cached under ``~/.cache/pomexport`` (or ``$POMEXPORT_TRITON_ENV``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

NUMPY_PIN = "numpy<2"
_MARKER = "pomexport-stub-env"


def _needs_env() -> bool:
    import numpy

    return int(numpy.__version__.split(".")[0]) >= 2


def default_location() -> Path:
    """Where the environment is cached (``$POMEXPORT_TRITON_ENV`` overrides)."""
    explicit = os.environ.get("POMEXPORT_TRITON_ENV")
    if explicit:
        return Path(explicit)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return Path.home() / ".cache" / "pomexport" / f"triton-stub-py{version}"


def _create(target: Path, timeout_s: float) -> None:
    """venv + numpy < 2, built in a temporary folder beside ``target`` and renamed into it (no
    half-made environment). The rename is safe for our use: the interpreter locates the venv
    through ``pyvenv.cfg`` next to ``bin/python``; only its activate scripts, unused here,
    record the old path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        run = dict(check=True, timeout=timeout_s, capture_output=True)
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp)], **run)
        pip = [str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--disable-pip-version-check", NUMPY_PIN], **run)
        (tmp / _MARKER).write_text(NUMPY_PIN + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except (subprocess.SubprocessError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = getattr(e, "stderr", b"") or b""
        raise ConfigError(
            f"could not create the Triton stub environment ({NUMPY_PIN}) at {target}: {e} "
            f"{detail.decode(errors='replace')[-500:]}"
        ) from e


def stub_bin(location: Path | None = None, timeout_s: float = 600.0) -> Path | None:
    """The ``bin`` folder to put first on the server's ``PATH`` (``None``: this Python's numpy
    already suits the stub). Creates the environment on first use."""
    if not _needs_env():
        return None
    target = location or default_location()
    if not (target / _MARKER).is_file():
        logger.info("creating the Triton stub environment (%s) at %s", NUMPY_PIN, target)
        _create(target, timeout_s)
    return target / "bin"
