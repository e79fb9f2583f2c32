"""The Python environment the Triton Python-backend stub runs models in.

The stubs shipped in the ``nvidia-pytriton`` 0.7 wheel are built against numpy 1: under
numpy 2 they pass garbled input tensors and return empty outputs (measured here: an echo
model received ``[1, 1]`` for ``[1, 2]`` and answered zero bytes). The stub embeds an
isolated interpreter (``PYTHONPATH`` is ignored) that finds its ``python3`` through ``PATH``
and, from the ``pyvenv.cfg`` beside it, its virtual environment. So when this Python has
numpy >= 2 we give the stub a virtual environment with its own numpy < 2 that sees exactly
the packages of the environment running pomexport, and put its ``bin`` first on ``PATH``.

"Exactly": ``--system-site-packages`` is not that. Inside a virtualenv it exposes the *base*
interpreter's packages, not the virtualenv's, so the stub could not import a pomexport
installed in the virtualenv. Instead the stub environment is a plain venv whose
``pomexport-parent-env.pth`` calls ``site.addsitedir`` on each site directory of this
environment, in this environment's ``sys.path`` order: the directories' own ``.pth`` files
(editable installs) run too, and they come after the stub's numpy < 2, which therefore wins.
The same holds for a bare interpreter and a conda environment (whose site directories are
those of its prefix).

Cached under ``~/.cache/pomexport/triton-stub-pyX.Y-<key>``, keyed by this environment (its
prefix, base interpreter, Python build and site directories), or at
``$POMEXPORT_TRITON_ENV``; an environment whose recorded key no longer matches is rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
import tempfile
from pathlib import Path

from pomexport.errors import ConfigError

logger = logging.getLogger(__name__)

NUMPY_PIN = "numpy<2"
FORMAT = 2  # bump when the layout of the environment changes: old caches are rebuilt
_MARKER = "pomexport-stub-env.json"
_PTH = "pomexport-parent-env.pth"
# Run by the stub environment's interpreter once it is made: what the stub will import.
_PROBE = "import json, numpy, pomexport; print(json.dumps([numpy.__version__, pomexport.__file__]))"


def _needs_env() -> bool:
    import numpy

    return int(numpy.__version__.split(".")[0]) >= 2


def site_dirs() -> list[str]:
    """The site directories of the running environment (its site-packages and, where enabled,
    the user's), in the order they have on ``sys.path``."""
    known = set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        known.add(site.getusersitepackages())
    return [p for p in dict.fromkeys(sys.path) if p in known]


def environment_key() -> dict:
    """What the stub environment depends on; a cached one is reused only when its key equals
    this one (another virtualenv, interpreter or Python build gets its own)."""
    base = getattr(sys, "_base_executable", sys.executable)
    return {
        "format": FORMAT,
        "numpy": NUMPY_PIN,
        "python": sys.version,
        "base_executable": os.path.realpath(base),
        "prefix": os.path.realpath(sys.prefix),
        "site_dirs": site_dirs(),
    }


def default_location(key: dict | None = None) -> Path:
    """Where the environment for ``key`` (default: this environment's) is cached;
    ``$POMEXPORT_TRITON_ENV`` overrides."""
    explicit = os.environ.get("POMEXPORT_TRITON_ENV")
    if explicit:
        return Path(explicit)
    digest = hashlib.sha256(json.dumps(key or environment_key(), sort_keys=True).encode())
    name = f"triton-stub-py{sys.version_info[0]}.{sys.version_info[1]}-{digest.hexdigest()[:12]}"
    return Path.home() / ".cache" / "pomexport" / name


def _recorded_key(target: Path) -> dict | None:
    try:
        return json.loads((target / _MARKER).read_text())
    except (OSError, ValueError):
        return None


def _matches(target: Path, key: dict) -> bool:
    # bin/python links to the base interpreter: gone if that Python was removed
    return _recorded_key(target) == key and (target / "bin" / "python").exists()


def _pth_text(dirs: list[str]) -> str:
    lines = [f"import site; site.addsitedir({d!r})" for d in dirs]
    return "# the site directories of the environment running pomexport (stub_env.py)\n" + (
        "\n".join(lines) + "\n"
    )


def _check(python: Path, run: dict) -> None:
    """The stub environment imports this pomexport and a numpy < 2, or ConfigError."""
    done = subprocess.run([str(python), "-c", _PROBE], text=True, **run)
    numpy_version, module = json.loads(done.stdout)
    import pomexport

    ours = Path(pomexport.__file__).resolve()
    if int(numpy_version.split(".")[0]) >= 2 or Path(module).resolve() != ours:
        raise ConfigError(
            f"the stub environment imports numpy {numpy_version} and {module}; "
            f"wanted {NUMPY_PIN} and {ours}"
        )


def _create(target: Path, key: dict, timeout_s: float) -> None:
    """venv + numpy < 2 + the .pth, built in a temporary folder beside ``target``, checked, and
    renamed into it (no half-made environment). The rename is safe for our use: the
    interpreter locates the venv through ``pyvenv.cfg`` next to ``bin/python``; only its
    activate scripts, unused here, record the old path."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    run = dict(check=True, timeout=timeout_s, capture_output=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(tmp)], **run)
        python = tmp / "bin" / "python"
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            text=True,
            **run,
        ).stdout.strip()
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, NUMPY_PIN], **run)
        Path(purelib, _PTH).write_text(_pth_text(key["site_dirs"]))
        _check(python, run)
        (tmp / _MARKER).write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except (subprocess.SubprocessError, OSError, ValueError, ConfigError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = getattr(e, "stderr", None) or ""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        tail = " ".join(detail.split())[-500:]
        raise ConfigError(
            f"could not create the Triton stub environment ({NUMPY_PIN}) at {target}: {e} {tail}"
        ) from e


def _prune(parent: Path, keep: Path) -> None:
    """Remove cached stub environments whose source environment no longer exists (e.g. the
    throw-away virtualenvs of CI runs); nothing can use them any more."""
    for other in parent.glob("triton-stub-py*"):
        recorded = _recorded_key(other)
        if other != keep and recorded and not Path(recorded.get("prefix", "/")).exists():
            logger.info("removing %s: its environment %s is gone", other, recorded["prefix"])
            shutil.rmtree(other, ignore_errors=True)


def stub_bin(location: Path | None = None, timeout_s: float = 600.0) -> Path | None:
    """The ``bin`` folder to put first on the server's ``PATH`` (``None``: this Python's numpy
    already suits the stub, whose interpreter is then this one). Creates, or rebuilds when it
    no longer matches this environment, the stub environment; concurrent callers wait for
    the one building it."""
    if not _needs_env():
        return None
    key = environment_key()
    target = location or default_location(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _matches(target, key):
            if target.is_dir() and any(target.iterdir()) and not (target / "pyvenv.cfg").exists():
                # $POMEXPORT_TRITON_ENV may name any folder: never delete what we did not make
                raise ConfigError(
                    f"{target} is not a Triton stub environment (no pyvenv.cfg) and is not "
                    "empty: refusing to replace it (point POMEXPORT_TRITON_ENV elsewhere)"
                )
            logger.info("creating the Triton stub environment (%s) at %s", NUMPY_PIN, target)
            _create(target, key, timeout_s)
            _prune(target.parent, target)
    return target / "bin"
