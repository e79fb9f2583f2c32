"""``pomexport bench``: per-frame latency and memory of PoM-DiT vs a softmax-attention DiT.
A thin layer over :func:`pomexport.runtime.measure.bench.run_bench`."""

from __future__ import annotations

from pathlib import Path

import click

from pomexport.cli import _options as o
from pomexport.cli._output import to_stderr, write_json
from pomexport.errors import ConfigError

_ISOLATION = (
    "process: each row in a fresh process (honest peak RSS); none: in this process, peak RSS "
    "reset per row (faster)."
)
_LONG = (
    "Long-clip mode instead of the rows: generate N frames (bundled model, else tiny) on each "
    "--backend; per-frame latency flatness and RSS growth from frame 16 to N."
)
_ROOFLINE = (
    "Roofline mode instead of the rows: per preset, --precisions and --batches, the ONNX "
    "Runtime CPU step at --threads (0: the runtime's default), the step's own GEMMs timed "
    "alone and back to back, the ratios, the non-GEMM time per op type, and eager torch."
)
_DECODER = (
    "Decoder mode instead of the rows: one stream of this artifact (with a decoder stage) on "
    "ONNX Runtime CPU; per latent frame the time of its --steps steps and commit vs its "
    "decode, and the decoder's share, for --repeats frames after --warmup."
)
_SIDE = (
    "Side-by-side mode instead of the rows: per preset and --frames, every series (PoM on each "
    "--backend, attention with KV cache and recomputing) built in one process and timed in the "
    "same 5 rounds (best kept), and each ONNX Runtime PoM backend's GEMM floor (its step's "
    "GEMMs back to back, STEPS + 1 times); no memory columns."
)
_PLOT = "Also plot latency per frame index (PoM per backend vs attention) to this PNG."
_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("bench")
@o.names_option("--backend", "torch", "PoM step backend(s), comma-separated.")
@o.names_option("--presets", "tiny,S/4", "Model presets, comma-separated (see `pomexport models`).")
@o.ints_option("--frames", "1,16,64,256",
               "Frame numbers to time (frame n follows n - 1 committed frames).")  # fmt: skip
@o.steps_option(8, "Denoising steps per frame.")
@o.option("--repeats", default=3, help="Timed frames per row (median).")
@o.option("--warmup", default=1, help="Untimed frames first.")
@o.option("--max-seconds", default=120.0, help="Skip a row whose estimated run time is longer.")
@o.option("--isolation", type=click.Choice(["process", "none"]), default="process", help=_ISOLATION)
@o.option("--min-seconds", default=2.0,
          help="Repeat cheap rows until this much was timed (steadier medians).")  # fmt: skip
@o.threads_option("torch threads in every row, and ONNX Runtime's with --roofline (0: the "
                  "default, all usable cores).",
                  show_default=True)  # fmt: skip
@o.option("--no-baseline", is_flag=True, help="PoM rows only, no attention baseline.")
@o.option("--long", "long_frames", type=int, default=None, help=_LONG)
@o.option("--roofline", is_flag=True, help=_ROOFLINE)
@o.option("--side-by-side", is_flag=True, help=_SIDE)
@o.names_option("--precisions", "fp32,fp16,int8", "With --roofline: precisions, comma-separated.")
@o.ints_option("--batches", "1,2", "With --roofline: batch sizes (streams), comma-separated.")
@o.out_option("Write the JSON here (default: stdout).", type=_FILE)
@o.option("--plot", type=_FILE, default=None, help=_PLOT)
@o.option("--decoder", type=click.Path(file_okay=False, path_type=Path), default=None,
          help=_DECODER)  # fmt: skip
def command(backend: tuple[str, ...], presets: tuple[str, ...], frames: tuple[int, ...],
            steps: int, repeats: int, warmup: int, max_seconds: float, isolation: str,
            min_seconds: float, threads: int, no_baseline: bool, long_frames: int | None,
            roofline: bool, side_by_side: bool, precisions: tuple[str, ...],
            batches: tuple[int, ...], out: Path | None, plot: Path | None,
            decoder: Path | None) -> None:  # fmt: skip
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

    --roofline measures the ONNX Runtime CPU step against its GEMMs instead: per preset,
    precision and batch, the step, its GEMM nodes each timed alone (weights in cache) and
    back to back (weights from memory, as in the step), the ratios step/GEMMs (1.0: nothing
    left to fuse), the rest's share per op type (ONNX Runtime's profiler) and the eager
    torch step (random weights); each a median of 20 runs, best of 3 interleaved rounds.

    --side-by-side times a preset's series at each frame in the same rounds instead, with
    PoM's GEMM floor on ONNX Runtime (e.g. --presets S/4 --frames 1 --backend ort).
    """
    from pomexport.runtime.measure.bench import BenchSettings, run_bench
    from pomexport.runtime.outputs import check_report_path

    settings = BenchSettings(presets=presets, frames=frames, backends=backend, steps=steps,
                             repeats=repeats, warmup=warmup, max_seconds=max_seconds,
                             isolation=isolation, threads=threads, min_seconds=min_seconds,
                             baseline=not no_baseline)  # fmt: skip
    check_report_path(out)  # before a run of minutes, not after
    check_report_path(plot, "--plot")
    mode = _one_mode(roofline, side_by_side, long_frames, decoder)
    if mode is not None:  # modes with their own report, no plot
        write_json(_mode(mode, settings, precisions, batches, long_frames, decoder), out)
        return
    report = run_bench(settings, progress=to_stderr)
    write_json(report, out)
    if plot is not None:  # after the JSON is safe: a plotting problem loses nothing
        from pomexport.runtime.measure.plots import plot_bench

        to_stderr(f"wrote {plot_bench(report, plot)}")


def _one_mode(roofline: bool, side_by_side: bool, long_frames, decoder) -> str | None:
    """The mode chosen instead of the rows (None: the rows); two modes are refused."""
    given = {"--roofline": roofline, "--side-by-side": side_by_side,
             "--long": long_frames is not None, "--decoder": decoder is not None}  # fmt: skip
    chosen = [name for name, on in given.items() if on]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} are separate modes: pass one")
    return chosen[0] if chosen else None


def _mode(mode: str, settings, precisions, batches, long_frames, decoder) -> dict:
    if mode == "--roofline":
        return _roofline(settings.presets, precisions, batches, settings.threads)
    if mode == "--side-by-side":
        from pomexport.runtime.measure.side_by_side import side_by_side

        return side_by_side(settings, progress=to_stderr)
    if mode == "--long":
        from pomexport.runtime.measure.bench_long import long_report

        return long_report(
            settings.backends, long_frames, settings.steps, settings.threads, progress=to_stderr
        )
    from pomexport.runtime.measure.bench_decoder import decoder_share

    return decoder_share(
        decoder, settings.repeats, settings.steps, settings.warmup, progress=to_stderr
    )


def _roofline(presets, precisions, batches, threads: int) -> dict:
    from pomexport.runtime.measure.roofline import RooflineSettings, roofline_report
    from pomexport.runtime.ort_backend import default_threads

    settings = RooflineSettings(threads=threads or default_threads())
    return roofline_report(presets, precisions, batches, settings, progress=to_stderr)
