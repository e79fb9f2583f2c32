"""Click options that several commands share: one definition each."""

from __future__ import annotations

import click


def trusted_key_option(signed: str, no_key: str = ""):
    """``--trusted-key`` (repeatable): the Ed25519 public keys ``signed`` must be signed by;
    the default is ``$POMEXPORT_TRUSTED_KEYS``. ``no_key`` says what happens without one."""
    default = "$POMEXPORT_TRUSTED_KEYS" + (f"; {no_key}" if no_key else "")
    return click.option(
        "--trusted-key",
        "trusted",
        multiple=True,
        type=click.Path(dir_okay=False),
        help=f"Public key {signed} must be signed by (repeatable; pomexport keygen's .pub)  "
        f"[default: {default}]",
    )
