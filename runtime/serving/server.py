"""``pomexport serve``: find a ``tritonserver`` and run it on a model repository.

Where the server comes from, in order: ``$POMEXPORT_TRITONSERVER`` (path of the binary), the
``tritonserver`` shipped in the ``nvidia-pytriton`` wheel (``pip install nvidia-pytriton
--no-deps``: its Python API pins numpy < 2, the binary needs nothing of it), a ``tritonserver``
on ``PATH`` (e.g. NVIDIA's container, backends in ``/opt/tritonserver/backends``).

The wheel ships the Python backend without its stub and one stub per Python version; like
pytriton itself, we assemble a backend folder with the stub of the running Python, so the
stub's interpreter is this one (or, under numpy 2, a stub environment that sees this one's
packages: :mod:`~pomexport.runtime.serving.stub_env`) and imports this ``pomexport``.

When the server does not start, :class:`ServerError` names the cause (the model-load errors of
its log, :mod:`~pomexport.runtime.serving.server_log`) and keeps the log file for the user.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from pomexport.errors import ConfigError, PomExportError
from pomexport.runtime.serving.server_log import failure_summary
from pomexport.runtime.serving.stub_env import stub_bin

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
INSTALL_HINT = (
    "no tritonserver found: `pip install nvidia-pytriton --no-deps` (its wheel ships the "
    "binary), set POMEXPORT_TRITONSERVER to a tritonserver binary, or put one on PATH"
)


class ServerError(PomExportError):
    """The Triton server did not start or become ready."""


@dataclass(frozen=True)
class TritonInstall:
    """A ``tritonserver`` binary, the backend folder it needs, and extra library paths."""

    binary: Path
    backends: Path | None  # None: the binary's default (/opt/tritonserver/backends)
    libs: tuple[Path, ...] = ()


def _pytriton_root() -> Path | None:
    spec = find_spec("pytriton")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    return root if (root / "bin" / "tritonserver").is_file() else None


def _pytriton_backends(root: Path, workdir: Path) -> Path:
    """A backend folder: the wheel's Python backend plus the stub of this Python version."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ConfigError(f"the pytriton wheel has no Python backend stub for Python {version}")
    python = workdir / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    for item in (root / "backends" / "python").iterdir():
        if item.is_file():
            shutil.copy2(item, python / item.name)
    shutil.copy2(stub, python / stub.name)
    return workdir / "backends"


def find_tritonserver(workdir: str | os.PathLike) -> TritonInstall:
    """The tritonserver to run (see the module doc); ``workdir`` receives the backend folder
    assembled for the pytriton wheel. :class:`ConfigError` with the install hint if none."""
    explicit = os.environ.get("POMEXPORT_TRITONSERVER")
    if explicit:
        if not Path(explicit).is_file():
            raise ConfigError(f"POMEXPORT_TRITONSERVER={explicit}: no such file")
        return TritonInstall(Path(explicit), None)
    root = _pytriton_root()
    if root is not None:
        libs = root.parent.parent / "nvidia_pytriton.libs"
        backends = _pytriton_backends(root, Path(workdir))
        return TritonInstall(root / "bin" / "tritonserver", backends, (libs,))
    found = shutil.which("tritonserver")
    if found:
        return TritonInstall(Path(found), None)
    raise ConfigError(INSTALL_HINT)


def server_command(
    install: TritonInstall,
    repo: str | os.PathLike,
    http_port: int = 8000,
    grpc_port: int = 8001,
    address: str = LOOPBACK,
) -> list[str]:
    """The tritonserver command line: both endpoints bound to ``address``, metrics off."""
    cmd = [
        str(install.binary),
        f"--model-repository={Path(repo).resolve()}",
        f"--http-address={address}",
        f"--http-port={http_port}",
        f"--grpc-address={address}",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--exit-on-error=true",
        "--strict-readiness=true",
        "--exit-timeout-secs=10",
    ]
    if install.backends is not None:
        cmd.append(f"--backend-directory={install.backends}")
    return cmd


def server_env(install: TritonInstall, stub_bin: Path | None = None) -> dict[str, str]:
    """This environment, with the stub's interpreter first on PATH (``stub_bin``, else the
    running Python's) and its libpython and the wheel's libraries on the loader path."""
    env = dict(os.environ)
    python_bin = stub_bin or Path(sys.executable).parent
    env["PATH"] = f"{python_bin}{os.pathsep}{env.get('PATH', '')}"
    libs = [str(p) for p in install.libs] + [sysconfig.get_config_var("LIBDIR") or ""]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
    return env


class TritonServer:
    """A running ``tritonserver`` on ``repo``; a context manager that stops it on exit.

    The server's log goes to ``log_path``, or to a temporary file that :meth:`stop` removes
    unless the server failed (then the error names it).

    >>> with TritonServer("repo", http_port=8000, grpc_port=8001) as server:
    ...     server.wait_ready(timeout_s=120)
    """

    def __init__(
        self,
        repo: str | os.PathLike,
        http_port: int = 8000,
        grpc_port: int = 8001,
        address: str = LOOPBACK,
        log_path: str | os.PathLike | None = None,
    ) -> None:
        if not (Path(repo) / "").is_dir():
            raise ConfigError(f"{repo}: no such model repository")
        self._workdir = tempfile.TemporaryDirectory(prefix="pomexport-triton-")
        install = find_tritonserver(self._workdir.name)
        self.url = f"{address}:{http_port}"
        self.grpc_url = f"{address}:{grpc_port}"
        # Outside the workdir, which stop() removes: a failed server's log must outlive it.
        self._own_log, self._keep_log = log_path is None, log_path is not None
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="pomexport-tritonserver-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path).absolute()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        python_bin = stub_bin() if install.backends is not None else None
        self.stub_env = python_bin.parent if python_bin else None  # None: this Python's own
        cmd = server_command(install, repo, http_port, grpc_port, address)
        logger.info("starting %s (log: %s)", " ".join(cmd), self.log_path)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=server_env(install, python_bin)
            )

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def failure(self, what: str) -> ServerError:
        """A one-line :class:`ServerError`: ``what``, the causes found in the log, where the
        stub environment and the log are (the log is then kept)."""
        self._keep_log = True
        try:
            cause = failure_summary(self.log_path.read_text(errors="replace"))
        except OSError as e:
            cause = f"(log unreadable: {e})"
        where = f"Python-backend stub environment {self.stub_env}; " if self.stub_env else ""
        return ServerError(
            f"{what}: {cause} ({where}server log kept at {self.log_path}; "
            "`pomexport serve --log-file PATH` writes it where you choose)"
        )

    def ready(self) -> bool:
        """True when the server answers ready on HTTP (all models loaded)."""
        try:
            url = f"http://{self.url}/v2/health/ready"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until ready; :class:`ServerError` naming the cause (see :meth:`failure`) if
        the server exits or is not ready after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise self.failure(f"tritonserver exited ({self.process.returncode})")
            if self.ready():
                return
            time.sleep(0.25)
        raise self.failure(f"tritonserver not ready after {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        self._workdir.cleanup()
        if self._own_log and not self._keep_log:
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
