"""``pomexport verify-bundle``: check a deploy bundle, optionally unpack it.
A thin layer over :func:`pomexport.export.bundle_check.verify_bundle`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o


@click.command("verify-bundle")
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option(
    "--extract", "extract", default=None, type=click.Path(file_okay=False),
    help="Unpack into this directory (absent or empty) after every check passed.",
)  # fmt: skip
@o.trusted_key_option("bundle.json", "none: unsigned bundles pass, with a warning")
def command(bundle: str, extract: str | None, trusted: tuple[str, ...]) -> None:
    """Verify BUNDLE (from `pomexport package`): every member a plain relative regular file
    (no absolute path, no '..', no symlink, hard link, device node or FIFO), listed in
    bundle.json with its size and sha256, every listed file present. Nothing is written
    unless all checks pass; a failure is one line naming the member, exit status 1."""
    from pomexport.export.artifact.signing import load_public_key
    from pomexport.export.bundle_check import verify_bundle

    keys = [load_public_key(k) for k in trusted] if trusted else None
    click.echo(verify_bundle(bundle, extract, trusted=keys).summary)
