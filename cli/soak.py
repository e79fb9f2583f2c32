"""``pomexport soak``: a long generation run watching memory, state and drift.
A thin layer over :func:`pomexport.runtime.measure.soak.soak`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o
from pomexport.runtime.choices import BACKENDS


@click.command("soak")
@o.model_argument("source")
@o.frames_option(None, "Frames to generate.", type=click.IntRange(min=2), required=True)
@o.option("--every", type=click.IntRange(min=1), default=100,
          help="Sample memory, state and drift every K frames.")  # fmt: skip
@o.steps_option(2, "Denoising steps per frame (few steps: more frames per hour).",
                type=click.IntRange(min=1))  # fmt: skip
@o.cfg_option(1.0, "Classifier-free guidance.")
@o.option("--label", default=1, help="Class label of the stream.")
@o.seed_option("Noise seed (and preset init).")
@o.backend_options(BACKENDS, "torch runs a model; ort, ort-cuda, ort-trt, trt an artifact.")
@o.reference_option("fp32 reference of an artifact SOURCE (default: the model named in the "
                    "manifest).")  # fmt: skip
@o.out_option("Directory for soak.json and soak.png.", required=True,
              type=click.Path(file_okay=False))  # fmt: skip
def command(source: str, frames: int, every: int, steps: int, cfg_scale: float, label: int,
            seed: int, backend: str, device: str, reference: str | None, out: str,
            ) -> None:  # fmt: skip
    """Generate FRAMES frames of one stream from SOURCE (an artifact directory or a model)
    continuously, sampling process RSS (and CUDA memory), state finiteness and drift against
    an fp32 torch reference every K frames. Exit status 1 when the state went non-finite."""
    from pomexport.runtime.measure.soak import SoakOptions, check_finite, soak

    options = SoakOptions(frames, every, steps, cfg_scale, label, seed, backend, device)
    report = soak(source, options, out, progress=click.echo, reference_model=reference)
    s = report.summary
    slope = s["rss_slope_kib_per_1000_frames"]
    click.echo(
        f"{s['frames_done']} frames in {s['elapsed_s']:.0f} s ({s['frames_per_s']:.1f} frames/s); "
        f"RSS {s['rss_mib_after_warmup']:.1f} -> {s['rss_mib_last']:.1f} MiB, slope after "
        f"warm-up {slope if slope is None else f'{slope:.2f}'} KiB/1000 frames; state finite: "
        f"{s['state_finite_throughout']}; state rel err max {s['state_rel_max']}"
    )
    for kind, path in report.paths.items():
        click.echo(f"{kind}: {path}")
    check_finite(report)
