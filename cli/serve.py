"""``pomexport serve``: run tritonserver on a model repository (loopback by default)."""

from __future__ import annotations

import click


@click.command("serve")
@click.argument("repo", type=click.Path(exists=True, file_okay=False))
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--grpc-port", type=int, default=8001, show_default=True)
@click.option(
    "--address",
    default="127.0.0.1",
    show_default=True,
    help="Address both endpoints bind to (0.0.0.0 exposes them to the network).",
)
@click.option("--ready-timeout-s", type=float, default=300.0, show_default=True)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write tritonserver's log here and keep it (default: a temporary file, kept only "
    "when the server fails, and named in the error).",
)
def command(
    repo: str,
    http_port: int,
    grpc_port: int,
    address: str,
    ready_timeout_s: float,
    log_file: str | None,
) -> None:
    """Start a Triton server on REPO and run until interrupted (Ctrl-C stops it)."""
    import signal
    import sys

    from pomexport.runtime.serving.server import TritonServer

    # SIGTERM (kill, systemd, Kubernetes) must stop tritonserver too: exit through the `with`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with TritonServer(repo, http_port, grpc_port, address, log_path=log_file) as server:
        server.wait_ready(ready_timeout_s)
        click.echo(
            f"ready: http://{server.url}  grpc://{server.grpc_url}  "
            f"(log: {server.log_path}; Ctrl-C stops)"
        )
        try:
            server.process.wait()
        except KeyboardInterrupt:
            click.echo("stopping", err=True)
        else:
            raise server.failure(f"tritonserver exited ({server.process.returncode})")
