"""``pomexport serve-repo``: write a Triton Inference Server model repository for an artifact."""

from __future__ import annotations

import click

from pomexport.cli import _options as o


@click.command("serve-repo")
@click.argument("artifact", type=click.Path(exists=True, file_okay=False))
@o.out_option("Repository folder (new).", required=True, type=click.Path())
@o.option("--max-streams", type=int, default=8,
          help="Streams per model instance (= max_batch_size, the generator's slots).")  # fmt: skip
@o.option("--instances", type=int, default=1, help="Model instances (instance_group count).")
@o.option("--idle-timeout-s", type=float, default=60.0,
          help="A sequence idle this long is reaped and its slot freed.")  # fmt: skip
@o.serving_options()
@o.steps_option(20)
@o.cfg_option(1.0, "Classifier-free guidance scale (1 = off; CFG doubles the rows).")
@o.option("--kind", type=click.Choice(["cpu", "gpu"]), default="cpu",
          help="Instance kind; gpu runs the artifact on ONNX Runtime's CUDA EP.")  # fmt: skip
@o.threads_option("Intra-op threads per instance (0: auto).")
def command(artifact: str, out: str, max_streams: int, instances: int, idle_timeout_s: float,
            strategy: str, max_queue_delay_us: int, steps: int, cfg_scale: float, kind: str,
            threads: int) -> None:  # fmt: skip
    """Write a Triton model repository serving ARTIFACT: one request = next frame of a stream."""
    from pomexport.runtime.serving.repository import RepoOptions, write_repository

    backend = "ort" if kind == "cpu" else "ort-cuda"
    opts = RepoOptions(max_streams, instances, idle_timeout_s, strategy, max_queue_delay_us,
                       steps, cfg_scale, backend=backend, kind=f"KIND_{kind.upper()}",
                       threads=threads)  # fmt: skip
    model = write_repository(artifact, out, opts)
    click.echo(f"wrote {model} (serve it with: pomexport serve {out})")
