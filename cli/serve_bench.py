"""``pomexport serve-bench``: frames/s through Triton with 1, 4, 16 concurrent streams.
A thin layer over :func:`pomexport.runtime.serving.bench.serve_bench`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.cli._output import write_json


@click.command("serve-bench")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@o.ints_option("--streams", "1,4,16", "Concurrencies, comma list.")
@o.frames_option(8, "Frames per video.")
@o.steps_option(20)
@o.option("--protocol", type=click.Choice(["http", "grpc"]), default="grpc",
          help="Triton client protocol of the streams.")  # fmt: skip
@o.serving_options()
@o.threads_option("Intra-op threads of the model (0: auto).")
@o.out_option("Also write the JSON report here.", type=click.Path())
def command(artifact: str, streams: tuple[int, ...], frames: int, steps: int, protocol: str,
            strategy: str, max_queue_delay_us: int, threads: int, out: str | None,
            ) -> None:  # fmt: skip
    """Measure served frames/s on ARTIFACT (its batch range must cover the largest count)."""
    from pomexport.runtime.serving.bench import serve_bench

    report = serve_bench(
        artifact, list(streams), frames, steps, protocol, threads, strategy, max_queue_delay_us
    )
    write_json(report, out, echo=True)
