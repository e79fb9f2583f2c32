"""``pomexport models``: list the bundled model and the presets."""

from __future__ import annotations

import json

import click

from pomexport.cli import _options as o


@click.command("models")
@o.json_option()
def command(as_json: bool) -> None:
    """List the bundled model and the architecture presets, with parameter counts and the
    recurrent state size per stream."""
    from pomexport.models.catalog import model_catalog

    rows = model_catalog()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'name':<20} {'kind':<8} {'params':>9} {'D':>5} {'L':>3} {'tok/frame':>9} "
    header += f"{'variant':<8} {'k':>2} {'e':>2} {'state/stream':>12}"
    click.echo(header)
    for r in rows:
        click.echo(
            f"{r['name']:<20} {r['kind']:<8} {r['params_m']:>8.2f}M {r['width']:>5} "
            f"{r['depth']:>3} {r['tokens_per_frame']:>9} {r['variant']:<8} {r['order']:>2} "
            f"{r['expansion']:>2} {r['state_kib_per_stream']:>9.1f} KiB"
        )
    for r in rows:  # latent presets: what decodes them (pomexport build --decoder DIR)
        if "latent" in r:
            lat = r["latent"]
            click.echo(
                f"{r['name']}: {lat['channels']}-channel latent of {lat['autoencoders']}, "
                f"x{lat['spatial_factor']} spatial, RGB frames per latent frame: "
                f"{lat['rgb_frames_per_latent_frame']}"
            )
