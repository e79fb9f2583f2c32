"""``pomexport verify``: an artifact against the PyTorch reference (or a second artifact).

Exit status: 0 when every gate passes, 1 when a gate fails (or on an error, printed as one
``Error:`` line).
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from pomexport.cli import _options as o
from pomexport.cli._output import to_stderr


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.4g}")
    return str(value)


def _summary_lines(summary: dict, layerwise: dict | None) -> list[str]:
    worst, drift = summary["worst_step"], summary["drift"]
    lines = [
        f"{summary['model']} {summary['precision']} vs {summary['settings']['against']}: "
        f"{'PASS' if summary['passed'] else 'FAIL'}",
        f"gates: {summary['gates_source']}",
        f"worst step: v max abs {_fmt(worst['v_max_abs'])}, v rel {_fmt(worst['v_rel'])}, "
        f"state rel {_fmt(worst['state_out_rel'])}, 1 - cosine "
        f"{_fmt(1.0 - min(worst['v_cosine_min'], worst['state_out_cosine_min']))}, "
        f"NaN steps {worst['nan_steps']}",
        "PSNR (dB) at frame: "
        + ", ".join(f"{k}: {_fmt(v)}" for k, v in summary["psnr_db_at_frame"].items())
        + f"; min {_fmt(summary['psnr_db_min'])}",
        f"drift: {_fmt(drift['frame_log10_slope_per_frame'])} decades/frame (frame error), "
        f"{_fmt(drift['state_log10_slope_per_frame'])} decades/frame (state error)",
    ]
    if summary.get("transient_frames"):
        frames = ", ".join(str(f) for f in summary["transient_frames"])
        lines.append(f"transient: frame {frames} under the {summary['gates']['psnr_min_db']} dB "
                     "gate, back over it the next frame (not a failure)")  # fmt: skip
    lines += [f"  FAIL {m}" for m in summary["failures"]]
    if layerwise:
        if "skipped" in layerwise:
            lines.append(f"layerwise: skipped ({layerwise['skipped']})")
        elif layerwise.get("first_failure"):
            lines.append(
                f"first layer that goes wrong ({layerwise['status']}): "
                f"{layerwise['first_failure']} at {layerwise['at']}"
            )
        else:
            lines.append(f"layerwise at {layerwise['at']}: no layer exceeds its tolerance")
    return lines


_AGAINST = "torch (the artifact's model in PyTorch) or a second artifact directory."


@click.command("verify")
@click.argument("artifact", type=click.Path(path_type=Path))
@o.option("--against", default="torch", help=_AGAINST)
@o.reference_option("Reference model for --against torch (default: the model named in the "
                    "manifest).")  # fmt: skip
@o.frames_option(16, "Frames per stream.")
@o.steps_option(4)
@o.option("--seeds", type=int, default=1, help="Streams (seeds 0..K-1).")
@o.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
          default=None, help="Write verify.json, drift.json and drift.png here.")  # fmt: skip
@o.decoder_option("The autoencoder folder the artifact's decoder stage was built from: its "
    "decoded frames are compared with torch's too (fp32: 1e-4 max abs, fp16: 40 dB).")  # fmt: skip
def command(artifact, against, reference, frames, steps, seeds, report_dir, decoder) -> None:
    """Check ARTIFACT numerically against its PyTorch reference, frame after frame.

    Per step: max/mean abs and relative error of v and state_out, cosine similarity (the
    artifact fed the reference's exact inputs). Per frame: PSNR of the decoded frame and the
    state error per layer of the artifact generating on its own (drift). Gates come from the
    artifact's manifest (defaults when absent, said so). On the first failure the first layer
    that goes wrong is named. Exits 1 when a gate fails.
    """
    from pomexport.runtime.measure.verify import verify

    given = {"frames": frames, "steps": steps, "seeds": seeds, "report_dir": report_dir}
    report = verify(artifact, against=against, reference_model=reference, progress=to_stderr,
                    **given)  # fmt: skip
    for line in _summary_lines(report.summary, report.layerwise):
        click.echo(line)
    for path in report.paths.values():
        click.echo(f"wrote {path}", err=True)
    decoded = True
    if decoder is not None:
        from pomexport.runtime.measure.verify_decoder import verify_decoder

        decoded = verify_decoder(artifact, decoder, frames=min(frames, 8))
        click.echo(decoded.summary)
    if not report or not decoded:
        click.get_current_context().exit(1)
