"""``pomexport serve-bench``: frames/s through Triton with 1, 4, 16 concurrent streams."""

from __future__ import annotations

import json

import click


@click.command("serve-bench")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--streams", default="1,4,16", show_default=True, help="Concurrencies, comma list.")
@click.option("--frames", "-n", type=int, default=8, show_default=True, help="Frames per video.")
@click.option("--steps", "-s", type=int, default=20, show_default=True)
@click.option("--protocol", type=click.Choice(["http", "grpc"]), default="grpc", show_default=True)
@click.option(
    "--strategy", type=click.Choice(["direct", "oldest"]), default="oldest", show_default=True
)
@click.option("--threads", type=int, default=0, help="Intra-op threads of the model (0: auto).")
@click.option("--max-queue-delay-us", type=int, default=20000, show_default=True)
@click.option("--out", "-o", type=click.Path(), help="Also write the JSON report here.")
def command(
    artifact: str,
    streams: str,
    frames: int,
    steps: int,
    protocol: str,
    strategy: str,
    threads: int,
    max_queue_delay_us: int,
    out: str | None,
) -> None:
    """Measure served frames/s on ARTIFACT (its batch range must cover the largest count)."""
    from pomexport.errors import ConfigError
    from pomexport.runtime.serving.bench import serve_bench

    try:
        counts = [int(s) for s in streams.split(",") if s.strip()]
    except ValueError as e:
        raise ConfigError(f"--streams: not a comma list of integers: {streams!r}") from e
    report = serve_bench(
        artifact, counts, frames, steps, protocol, threads, strategy, max_queue_delay_us
    )
    text = json.dumps(report, indent=2)
    if out:
        from pathlib import Path

        from pomexport.export.artifact.atomic import atomic_write

        atomic_write(Path(out), lambda tmp: Path(tmp).write_text(text + "\n"))
    click.echo(text)
