"""``pomexport plan``: the memory budget of a deployment on a Jetson target."""

from __future__ import annotations

import json

import click

from pomexport.cli import _options as o
from pomexport.runtime.measure import plan as budget  # light: torch is imported only when counting

_HELP = f"""Print the memory budget of MODEL(s) (default: the bundled model, S/2 and XL/2) on a
Jetson TARGET for each --precision, and whether it fits.

\b
Jetson memory is shared by CPU and GPU: available = total - OS reserve.
  weights      fp32 4P, fp16 2P, int8 1*Pq + 4*Cq + 2*(P - Pq)
               (Pq: weights of the quantized GEMMs/convs, Cq their output channels)
  activations  B * N * (2D + max(3C, 2H)) * a     (a = 4 fp32, 2 fp16/int8)
  I/O          2 * B * E * a + 24 B + 4 * S * E    (E = C_in*H*W)
  state        3 copies x R rows x (L*C*4 + 4)     (ping-pong + scratch; R = 2S with CFG)
  overhead     CUDA context + TensorRT runtime (estimates; override when measured)
  decoder      MODEL an artifact with a decoder stage: its graphs' initializers, largest
               node's live tensors, latent/RGB buffers, Wan caches x 2 (ping-pong) x S
  run total    weights + activations + I/O + state + decoder + overhead
  build peak   3 * max(weights, decoder weights) + builder workspace cap + overhead
B = --batch (the engine profile's max batch, default R), S = --streams, N tokens per
frame, D width, C state width, H MLP hidden, L depth. Targets: {", ".join(budget.TARGETS)}.
"""

DEFAULT_MODELS = ("pom-dit-video-tiny", "S/2", "XL/2")


def _mib(n: int) -> str:
    return f"{n / budget.MIB:,.1f}"


def _table(rows: list[budget.Budget], target: budget.Target) -> list[str]:
    lines = [
        f"target {target.name}: {target.total_mib:,} MiB total, OS reserve"
        f" {target.os_reserve_mib:,} MiB -> {target.available_mib:,} MiB available;"
        f" overhead {target.cuda_context_mib} MiB"
        f" CUDA + {target.tensorrt_mib} MiB TensorRT; builder workspace cap"
        f" {target.workspace_mib:,} MiB",
        f"{'model':<20} {'prec':<5} {'params':>8} {'weights':>9} {'activ.':>8} {'I/O':>7} "
        f"{'state/str':>9} {'state':>7} {'run':>9} {'build':>9}  fits (MiB)",
    ]
    for b in rows:
        verdict = "yes" if b.fits else ("run only (build off-device)" if b.fits_run else "NO")
        lines.append(
            f"{b.model:<20} {b.precision:<5} {b.params / 1e6:>7.1f}M {_mib(b.weights):>9} "
            f"{_mib(b.activations):>8} {_mib(b.io):>7} {b.state_per_stream / 1024:>7.1f}K "
            f"{_mib(b.state):>7} {_mib(b.run_total):>9} {_mib(b.build_total):>9}  {verdict}"
        )
        if b.decoder is not None:
            d = b.decoder
            lines.append(
                f"{'  + decoder':<20} {d.precision:<5} {d.kind:>9} {_mib(d.weights):>9} "
                f"{_mib(d.activations):>8} {_mib(d.io):>7} {d.cache_per_stream / 1024:>7.1f}K "
                f"{_mib(d.cache):>7}  (in run)"
            )
    return lines


@click.command("plan", help=_HELP)
@click.argument("models", nargs=-1)
@click.option("--target", type=click.Choice(list(budget.TARGETS)), default="orin-nano-8gb")
@click.option(
    "--precision",
    "precisions",
    type=click.Choice(budget.PRECISIONS),
    multiple=True,
    help="Repeatable (default: fp16 and int8).",
)
@click.option("--streams", default=1, show_default=True, help="Independent video streams S.")
@click.option("--batch", type=int, default=None, help="Engine profile max batch B (default R).")
@click.option(
    "--cfg/--no-cfg", "guidance", default=True, show_default=True, help="CFG doubles rows."
)
@click.option("--os-reserve-mib", type=int, default=None, help="Measured OS reserve.")
@click.option("--cuda-context-mib", type=int, default=None, help="Measured CUDA context.")
@click.option("--tensorrt-mib", type=int, default=None, help="Measured TensorRT runtime.")
@click.option("--workspace-mib", type=int, default=None, help="Builder workspace cap.")
@o.json_option("Print JSON (sizes in bytes).")
def command(
    models: tuple[str, ...],
    target: str,
    precisions: tuple[str, ...],
    streams: int,
    batch: int | None,
    guidance: bool,
    os_reserve_mib: int | None,
    cuda_context_mib: int | None,
    tensorrt_mib: int | None,
    workspace_mib: int | None,
    as_json: bool,
) -> None:
    dev = budget.get_target(
        target,
        os_reserve_mib=os_reserve_mib,
        cuda_context_mib=cuda_context_mib,
        tensorrt_mib=tensorrt_mib,
        workspace_mib=workspace_mib,
    )
    rows = budget.plan_models(
        models or DEFAULT_MODELS, dev, precisions or ("fp16", "int8"), streams, batch, guidance
    )
    if as_json:
        click.echo(
            json.dumps({"target": dev.__dict__, "budgets": [b.as_dict() for b in rows]}, indent=2)
        )
        return
    click.echo("\n".join(_table(rows, dev)))
