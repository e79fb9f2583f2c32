"""The decoder stage of a build (issue 21): a local diffusers ``save_pretrained`` folder ->
``decoder/<role>.onnx`` and the manifest's ``decoder`` entry, written into the build's draft.

:func:`check_decoder_source` runs before any export (one-line errors: not a folder, no
config or safetensors, a class pomexport does not decode, latent channels other than the
model's ``in_channels``, a causal video decoder for an image model); :func:`add_decoder`
exports the graphs at the model's latent size (batch 1: the runtime decodes stream by stream)
and records them (``export/artifact/decoder.py``). The build's one manifest write lists and
hashes them with every other file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable

from pomexport.errors import ConfigError
from pomexport.export.artifact import ArtifactDraft
from pomexport.export.artifact.decoder import KEY, decoder_entry, decoder_file
from pomexport.export.decoder import export_decoder
from pomexport.models.config import PoMDiTConfig
from pomexport.models.decoders import check_source_for

log = logging.getLogger(__name__)

# The decoder's precision per build precision: int8 builds carry an fp16 decoder (its graph
# from the same fp16 pass and overflow scan; an int8 decoder is not calibrated yet).
DECODER_PRECISION = {"fp32": "fp32", "fp16": "fp16", "int8": "fp16"}


def check_decoder_source(folder: str | os.PathLike, cfg: PoMDiTConfig) -> dict:
    """The folder's ``config.json`` once it can decode ``cfg``'s latents (channels, image vs
    video); ConfigError or ArtifactError in one line otherwise. Reads the config only."""
    return check_source_for(folder, cfg.in_channels, cfg.video)


def add_decoder(
    draft: ArtifactDraft,
    folder: str | os.PathLike,
    precision: str,
    cfg: PoMDiTConfig,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Export the decoder of ``folder`` at ``precision`` (fp32 or fp16) for ``cfg``'s latent
    size into ``draft``: ``decoder/<role>.onnx`` and ``draft.manifest["decoder"]`` (returned)."""
    check_decoder_source(folder, cfg)
    say = progress or (lambda message: log.info("%s", message))
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"decoder precision must be fp32 or fp16, got {precision!r}")
    size = (cfg.input_size, cfg.input_size)
    say(f"exporting the decoder of {folder} ({precision}, latent {size[0]}x{size[1]})")
    with tempfile.TemporaryDirectory(prefix="pomexport-decoder-") as tmp:
        exported = export_decoder(folder, tmp, precision, size, batch=1)
        for role, path in exported.files.items():
            draft.copy_in(decoder_file(role), path)
    draft.manifest[KEY] = decoder_entry(
        exported.source_class,
        exported.io_contract["kind"],
        precision,
        exported.io_contract,
        exported.frames_per_step,
    )
    return draft.manifest[KEY]
