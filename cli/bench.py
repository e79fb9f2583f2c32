"""``pomexport bench``: per-frame latency and memory of PoM-DiT vs a softmax-attention DiT."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from pomexport.errors import ConfigError


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _frames(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError as e:
        raise ConfigError(f"--frames takes integers separated by commas, got {value!r}") from e


def _check_writable(out: Path | None) -> None:
    if out is None:
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out: cannot create {out.parent}: {e.strerror}") from e
    if not os.access(out.parent, os.W_OK) or out.is_dir():
        raise ConfigError(f"--out: cannot write {out}")


@click.command("bench")
@click.option(
    "--backend", default="torch", show_default=True, help="PoM step backend(s), comma-separated."
)
@click.option(
    "--presets",
    default="tiny,S/4",
    show_default=True,
    help="Model presets, comma-separated (see `pomexport models`).",
)
@click.option(
    "--frames",
    default="1,16,64,256",
    show_default=True,
    help="Frame numbers to time (frame n follows n - 1 committed frames).",
)
@click.option("--steps", default=8, show_default=True, help="Denoising steps per frame.")
@click.option("--repeats", default=3, show_default=True, help="Timed frames per row (median).")
@click.option("--warmup", default=1, show_default=True, help="Untimed frames first.")
@click.option(
    "--max-seconds",
    default=120.0,
    show_default=True,
    help="Skip a row whose estimated run time is longer.",
)
@click.option(
    "--isolation",
    type=click.Choice(["process", "none"]),
    default="process",
    show_default=True,
    help="process: each row in a fresh process (honest peak RSS); none: in this "
    "process, peak RSS reset per row (faster).",
)
@click.option(
    "--min-seconds",
    default=2.0,
    show_default=True,
    help="Repeat cheap rows until this much was timed (steadier medians).",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    help="torch threads in every row (0: torch's default, all usable cores).",
)
@click.option("--no-baseline", is_flag=True, help="PoM rows only, no attention baseline.")
@click.option(
    "--long",
    "long_frames",
    type=int,
    default=None,
    help="Long-clip mode instead of the rows: generate N frames (bundled model, else tiny) "
    "on each --backend; per-frame latency flatness and RSS growth from frame 16 to N.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON here (default: stdout).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also plot latency per frame index (PoM per backend vs attention) to this PNG.",
)
def command(
    backend,
    presets,
    frames,
    steps,
    repeats,
    warmup,
    max_seconds,
    isolation,
    min_seconds,
    threads,
    no_baseline,
    long_frames,
    out,
    plot,
) -> None:
    """Per-frame latency and memory of PoM-DiT vs a softmax-attention DiT, as JSON.

    For each preset: PoM-DiT on each backend (fixed-size state), and a DiT of the same
    width/depth/patching with block-causal softmax attention, once with a KV cache and once
    recomputing the whole clip every step. Each row: median step and frame latency (frame =
    STEPS denoising calls + the commit) at frame n, bytes of state/cache held, peak RSS.
    Ratios (last/first frame; attention/PoM per frame) are in "summary".

    Presets: tiny and S/4 by default. S/4 has the S width and depth (384, 12) with 64
    tokens per frame, so frame 256 sees a 16k-token context: attention's growth shows
    clearly and the whole run fits in about 10 minutes on 2 CPU cores. S/2 (256 tokens per
    frame) makes frame 256 a 65k-token context: a 2.3 GiB KV cache and hours of full
    recompute on 2 cores, so its large-frame attention rows would only be skipped (pass
    --presets S/2 and a larger --max-seconds on a bigger machine).
    """
    from pomexport.export.artifact.atomic import atomic_write
    from pomexport.runtime.measure.bench import BenchSettings, run_bench

    settings = BenchSettings(
        presets=_csv(presets),
        frames=_frames(frames),
        backends=_csv(backend),
        steps=steps,
        repeats=repeats,
        warmup=warmup,
        max_seconds=max_seconds,
        isolation=isolation,
        threads=threads,
        min_seconds=min_seconds,
        baseline=not no_baseline,
    )
    _check_writable(out)  # before a run of minutes, not after
    _check_writable(plot)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    if long_frames is not None:
        from pomexport.runtime.measure.bench_long import long_report

        report = long_report(settings.backends, long_frames, steps, threads, progress=echo)
        plot = None  # the latency-per-frame-index plot is for the rows
    else:
        report = run_bench(settings, progress=echo)
    text = json.dumps(report, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        atomic_write(out, lambda tmp: tmp.write_text(text))
        click.echo(f"wrote {out}", err=True)
    if plot is not None:  # after the JSON is safe: a plotting problem loses nothing
        from pomexport.runtime.measure.plots import plot_bench

        click.echo(f"wrote {plot_bench(report, plot)}", err=True)
