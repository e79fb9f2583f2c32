"""``pomexport verify-bundle``: check a deploy bundle, optionally unpack it.
A thin layer over :func:`pomexport.export.bundle_check.verify_bundle`."""

from __future__ import annotations

import click


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option(
    "--extract", "extract", default=None, type=click.Path(file_okay=False),
    help="Unpack into this directory (absent or empty) after every check passed.",
)  # fmt: skip
def command(bundle: str, extract: str | None) -> None:
    """Verify BUNDLE (from `pomexport package`): every member a plain relative regular file
    (no absolute path, no '..', no symlink, hard link, device node or FIFO), listed in
    bundle.json with its size and sha256, every listed file present. Nothing is written
    unless all checks pass; a failure is one line naming the member, exit status 1."""
    from pomexport.export.bundle_check import verify_bundle

    click.echo(verify_bundle(bundle, extract).summary)
