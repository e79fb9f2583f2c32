"""Import PoM layer weights named as in the two reference codebases.

- official ``pom`` package (``powers``): ``qc_proj`` (context projection, width e*D; older
  releases call it ``po_proj``), ``se_proj`` + ``se_bias`` (selection gate), ``po_coeff``
  [C, k], ``ag_proj`` (output).
- HoMM (``moments``): ``ho_proj`` (width k*e*D, with bias), ``se_proj`` (gate), ``ag_proj``.

Both map onto :class:`pomexport.models.mixer.PolyMixer` (``proj_h``, ``proj_g``, ``coeff``,
``proj_out``). A source key that has no destination, or a missing one, is an error: a silent
partial import would produce a model that runs and is wrong.
"""

from __future__ import annotations

import re

import torch

from pomexport.errors import ArtifactError
from pomexport.models.mixer import PolyMixer
from pomexport.models.pom_dit import PoMDiT

# source suffix -> destination suffix, per naming scheme
POM_NAMES = {
    "qc_proj.weight": "proj_h.weight",
    "qc_proj.bias": "proj_h.bias",
    "po_proj.weight": "proj_h.weight",
    "po_proj.bias": "proj_h.bias",
    "se_proj.weight": "proj_g.weight",
    "se_proj.bias": "proj_g.bias",
    "se_bias": "proj_g.bias",
    "po_coeff": "coeff",
    "ag_proj.weight": "proj_out.weight",
    "ag_proj.bias": "proj_out.bias",
}
HOMM_NAMES = {
    "ho_proj.weight": "proj_h.weight",
    "ho_proj.bias": "proj_h.bias",
    "se_proj.weight": "proj_g.weight",
    "se_proj.bias": "proj_g.bias",
    "ag_proj.weight": "proj_out.weight",
    "ag_proj.bias": "proj_out.bias",
}
SCHEMES = {"pom": POM_NAMES, "homm": HOMM_NAMES}


def detect_scheme(state_dict: dict[str, torch.Tensor]) -> str:
    """``pom`` or ``homm`` from the key names."""
    keys = " ".join(state_dict)
    if "ho_proj" in keys:
        return "homm"
    if re.search(r"(qc_proj|po_proj|po_coeff)", keys):
        return "pom"
    raise ArtifactError("state dict has neither pom (qc_proj/po_coeff) nor HoMM (ho_proj) keys")


def _mixer_tensors(
    state_dict: dict[str, torch.Tensor], names: dict[str, str], prefix: str
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        suffix = key[len(prefix) :]
        if suffix not in names:
            raise ArtifactError(f"no destination for weight {key!r}")
        dest = names[suffix]
        if dest in out:
            raise ArtifactError(f"two source weights map onto {dest!r} (at {key!r})")
        out[dest] = value
    return out


def import_mixer(
    mixer: PolyMixer, state_dict: dict[str, torch.Tensor], scheme: str | None = None, prefix=""
) -> None:
    """Load one PoM layer's weights (keys under ``prefix``) into ``mixer``, in place."""
    scheme = scheme or detect_scheme(state_dict)
    tensors = _mixer_tensors(state_dict, SCHEMES[scheme], prefix)
    own = mixer.state_dict()
    # A source without a bias (official pom's qc_proj) means a zero bias here.
    for name, value in own.items():
        if name not in tensors and name.endswith(".bias"):
            tensors[name] = torch.zeros_like(value)
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise ArtifactError(f"{scheme} weights under {prefix!r} lack {missing}")
    for name, value in tensors.items():
        if name not in own or own[name].shape != value.shape:
            shape = None if name not in own else tuple(own[name].shape)
            raise ArtifactError(
                f"{scheme} weight for {name!r} has shape {tuple(value.shape)}, expected {shape}"
            )
    mixer.load_state_dict(tensors, strict=True)


def import_mixers(
    model: PoMDiT, state_dict: dict[str, torch.Tensor], layer_prefix: str = "blocks.{i}.attn."
) -> None:
    """Load every block's mixer from a checkpoint whose layer ``i`` lives under
    ``layer_prefix.format(i=i)`` (DiT codebases name the attention slot ``attn``)."""
    scheme = detect_scheme(state_dict)
    for i, block in enumerate(model.blocks):
        import_mixer(block.mixer, state_dict, scheme, layer_prefix.format(i=i))
