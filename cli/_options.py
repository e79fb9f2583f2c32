"""Click options that several commands share: each defined once here, composed by the commands.

Each factory returns one decorator (``@frames_option(16, "Frames per clip.")``); a group of
options that go together is :func:`compose`d from them. Defaults and help differ per command
(generate samples 20 steps, verify 4); the flags, types and parsing do not. Values are parsed
by the library's parsers (``pomexport.export.artifact.options``, ``pomexport.runtime.options``),
so an error reads the same from Python; the group in ``main.py`` prints it as one line.
Nothing here imports torch: ``pomexport --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from pomexport.runtime.choices import DEVICES, SAMPLERS

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]

DEFAULT_MODEL = "pom-dit-video-tiny"  # models/registry.py's, without importing torch
_SHIFT = "Time-schedule shift (SD3-style; 1 = uniform)."
_SAMPLER = "euler: one model call per step; heun: two (second order, trapezoidal)."
_DEVICE = "auto: cuda when a GPU is here, else cpu."


def compose(*decorators: Decorator) -> Decorator:
    """One decorator applying ``decorators`` as if stacked in this order (top first)."""

    def apply(function: F) -> F:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def option(*names: str, **attrs: Any) -> Decorator:
    """``click.option`` that shows its default in ``--help`` unless told otherwise."""
    attrs.setdefault("show_default", attrs.get("default") is not None)
    return click.option(*names, **attrs)


# -- what to run -----------------------------------------------------------------------------
def model_argument(name: str = "model", **attrs: Any) -> Decorator:
    """MODEL (or SOURCE): bundled name, preset, weights file (or artifact); default bundled."""
    return click.argument(name, required=False, default=DEFAULT_MODEL, **attrs)


def reference_option(help: str) -> Decorator:
    """``--model``: the fp32 torch reference of an artifact (verify, soak)."""
    return option("--model", "reference", default=None, help=help)


def backend_options(backends: tuple[str, ...], help: str) -> Decorator:
    """``--backend`` (auto or one of ``backends``) and ``--device`` (auto, cpu, cuda)."""
    backend = option("--backend", type=click.Choice(("auto", *backends)), default="auto", help=help)
    device = option("--device", type=click.Choice(DEVICES), default="auto", help=_DEVICE)
    return compose(backend, device)


def precision_option(choices: tuple[str, ...], default: str, help: str | None = None) -> Decorator:
    return option("--precision", type=click.Choice(choices), default=default, help=help)


def batch_option(help: str = "Batch range MIN:OPT:MAX (or N: fixed).") -> Decorator:
    """``--batch MIN:OPT:MAX``, parsed by the library into (min, opt, max)."""
    return option("--batch", default="1:1:8", help=help, callback=_batch)


def _batch(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int, int]:
    from pomexport.export.artifact.options import parse_batch

    return parse_batch(value)


def ints_option(name: str, default: str | None, help: str, **attrs: Any) -> Decorator:
    """An option taking comma-separated integers (``1,16,64``), parsed into a tuple."""
    return option(name, default=default, help=help, callback=_ints, **attrs)


def _ints(ctx: click.Context, param: click.Parameter, value: str | None):
    from pomexport.runtime.options import parse_ints

    return None if value is None else parse_ints(value, param.opts[0])


def names_option(name: str, default: str, help: str, **attrs: Any) -> Decorator:
    """An option taking comma-separated names (``tiny,S/4``), parsed into a tuple."""
    return option(name, default=default, help=help, callback=_names, **attrs)


def _names(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    from pomexport.runtime.options import parse_names

    return parse_names(value)


# -- how to sample ---------------------------------------------------------------------------
def frames_option(default: int | None, help: str, **attrs: Any) -> Decorator:
    attrs.setdefault("type", int)
    return option("--frames", "-n", default=default, help=help, **attrs)


def steps_option(default: int, help: str = "Denoising steps.", **attrs: Any) -> Decorator:
    attrs.setdefault("type", int)
    return option("--steps", "-s", default=default, help=help, **attrs)


def cfg_option(default: float, help: str | None = None) -> Decorator:
    """``--cfg-scale`` (also ``--cfg``): classifier-free guidance, 1 = off."""
    return option("--cfg-scale", "--cfg", "cfg_scale", type=float, default=default, help=help)


def seed_option(help: str | None = "Noise seed.") -> Decorator:
    return option("--seed", type=int, default=0, help=help)


def sampler_options(steps: int, cfg: float) -> Decorator:
    """--steps, --cfg-scale, --seed, --sampler, --shift: a :class:`SamplerSettings`."""
    return compose(
        steps_option(steps),
        cfg_option(cfg, "Classifier-free guidance scale (1 = off)."),
        seed_option(),
        option("--sampler", type=click.Choice(SAMPLERS), default="euler", help=_SAMPLER),
        option("--shift", type=float, default=1.0, help=_SHIFT),
    )


def decoder_option(help: str) -> Decorator:
    """``--decoder DIR``: a local diffusers ``save_pretrained`` folder (latent decoder)."""
    folder = click.Path(exists=True, file_okay=False)
    return option("--decoder", "decoder", type=folder, default=None, help=help)


# -- output ----------------------------------------------------------------------------------
def out_option(help: str, **attrs: Any) -> Decorator:
    attrs.setdefault("default", None)
    return option("--out", "-o", help=help, **attrs)


def json_option(help: str = "Print JSON instead of a table.") -> Decorator:
    return option("--json", "as_json", is_flag=True, help=help)


def progress_option(help: str | None = None) -> Decorator:
    return option("--progress/--no-progress", default=True, help=help)


def threads_option(help: str, **attrs: Any) -> Decorator:
    attrs.setdefault("show_default", False)
    return option("--threads", type=int, default=0, help=help, **attrs)


def sign_option(help: str) -> Decorator:
    """``--sign KEY``: an Ed25519 private key (``pomexport keygen``)."""
    return option("--sign", "sign_key", type=click.Path(dir_okay=False), default=None, help=help)


def trusted_key_option(signed: str, no_key: str = "") -> Decorator:
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


def use_trusted(trusted: tuple[str, ...]) -> None:
    """Trust ``--trusted-key``'s keys for this command (nothing given: the environment's)."""
    if trusted:
        from pomexport.export.artifact.signing import use_trusted_keys

        use_trusted_keys(trusted)


# -- serving ---------------------------------------------------------------------------------
def serving_options(
    strategy_help: str = "Sequence batcher scheduling strategy.",
    delay_help: str = "How long the sequence batcher waits to fill a batch.",
) -> Decorator:
    """--strategy and --max-queue-delay-us of Triton's sequence batcher."""
    return compose(
        option("--strategy", type=click.Choice(["direct", "oldest"]), default="oldest",
               help=strategy_help),
        option("--max-queue-delay-us", type=int, default=20000, help=delay_help),
    )  # fmt: skip
