"""``pomexport serve-repo``: write a Triton Inference Server model repository for an artifact."""

from __future__ import annotations

import click


@click.command("serve-repo")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(), help="Repository folder (new).")
@click.option(
    "--max-streams",
    type=int,
    default=8,
    show_default=True,
    help="Streams per model instance (= max_batch_size, the generator's slots).",
)
@click.option(
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="Model instances (instance_group count).",
)
@click.option(
    "--idle-timeout-s",
    type=float,
    default=60.0,
    show_default=True,
    help="A sequence idle this long is reaped and its slot freed.",
)
@click.option(
    "--strategy",
    type=click.Choice(["direct", "oldest"]),
    default="oldest",
    show_default=True,
    help="Sequence batcher scheduling strategy.",
)
@click.option("--steps", "-s", type=int, default=20, show_default=True, help="Denoising steps.")
@click.option(
    "--cfg",
    "cfg_scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Classifier-free guidance scale (1 = off; CFG doubles the rows).",
)
@click.option(
    "--kind",
    type=click.Choice(["cpu", "gpu"]),
    default="cpu",
    show_default=True,
    help="Instance kind; gpu runs the artifact on ONNX Runtime's CUDA EP.",
)
@click.option("--threads", type=int, default=0, help="Intra-op threads per instance (0: auto).")
@click.option(
    "--max-queue-delay-us",
    type=int,
    default=20000,
    show_default=True,
    help="How long the sequence batcher waits to fill a batch.",
)
def command(
    artifact: str,
    out: str,
    max_streams: int,
    instances: int,
    idle_timeout_s: float,
    strategy: str,
    steps: int,
    cfg_scale: float,
    kind: str,
    threads: int,
    max_queue_delay_us: int,
) -> None:
    """Write a Triton model repository serving ARTIFACT: one request = next frame of a stream."""
    from pomexport.runtime.serving.repository import RepoOptions, write_repository

    opts = RepoOptions(
        max_streams=max_streams,
        instances=instances,
        idle_timeout_s=idle_timeout_s,
        strategy=strategy,
        steps=steps,
        cfg_scale=cfg_scale,
        threads=threads,
        max_queue_delay_us=max_queue_delay_us,
        kind=f"KIND_{kind.upper()}",
        backend="ort" if kind == "cpu" else "ort-cuda",
    )
    model = write_repository(artifact, out, opts)
    click.echo(f"wrote {model} (serve it with: pomexport serve {out})")
