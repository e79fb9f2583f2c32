"""``pomexport package``: an artifact -> a deploy bundle for a Jetson or x86 TensorRT target.
A thin layer over :func:`pomexport.export.bundle.package`."""

from __future__ import annotations

import click

from pomexport.cli import _options as o

# Target names without importing the export package (keeps `pomexport --help` fast).
_TARGETS = ("jetson-orin-jp6", "jetson-jp7", "x86-trt10", "x86-trt11")


@click.command("package")
@click.argument("artifact", type=click.Path(file_okay=False))
@click.option(
    "--target", type=click.Choice(_TARGETS), required=True,
    help="jetson-orin-jp6: JetPack 6.x (TensorRT 10.3, CUDA 12.6, sm_87); jetson-jp7: "
    "JetPack 7.2.2+ (TensorRT 11.4.1; Orin sm_87, Thor sm_110); x86-trt10 / x86-trt11: "
    "x86 GPUs with TensorRT 10.3 / 11.4.1.",
)  # fmt: skip
@o.out_option("Bundle file to write (BUNDLE.tar.gz).", required=True)
@click.option(
    "--workspace-mib", type=click.IntRange(min=0), default=None,
    help="TensorRT builder workspace cap on the device (0: none)  [default: the target's; "
    "1024 on Jetson, which fits an Orin Nano 8 GB]",
)  # fmt: skip
@o.sign_option("Ed25519 private key (pomexport keygen) signing bundle.json (bundle.sig) and "
               "the bundled manifest (artifact/manifest.sig).")  # fmt: skip
@o.trusted_key_option("the ARTIFACT")
def command(
    artifact: str,
    target: str,
    out: str,
    workspace_mib: int | None,
    sign_key: str | None,
    trusted: tuple[str, ...],
) -> None:
    """Package ARTIFACT (a `pomexport build` directory) into a deterministic tar.gz for the
    device: the precision-baked ONNX (portable and plugin flavors), the plugin and C++
    runtime sources with CMake, build.sh (verifies every file, compiles, builds the engine
    with trtexec), bundle.json (sha256 of every file, target versions, IO contract) and a
    README. Check it with `pomexport verify-bundle`."""
    from pomexport.export.bundle import package

    o.use_trusted(trusted)
    result = package(artifact, target, out, workspace_mib=workspace_mib, sign_key=sign_key)
    click.echo(result.summary)
