"""``pomexport keygen``: an Ed25519 key pair for signing artifacts and bundles.
A thin layer over :func:`pomexport.export.artifact.signing.keygen`."""

from __future__ import annotations

import click


@click.command("keygen")
@click.argument("prefix")
def command(prefix: str) -> None:
    """Write PREFIX.key (private, mode 0600; keep it off the devices) and PREFIX.pub (give it
    to loaders: --trusted-key or POMEXPORT_TRUSTED_KEYS). Existing files are never
    overwritten. Sign with `pomexport build --sign PREFIX.key` / `pomexport package --sign`."""
    from pomexport.export.artifact.signing import keygen, load_public_key

    private, public = keygen(prefix)
    click.echo(f"wrote {private} and {public} (key id {load_public_key(public).key_id})")
