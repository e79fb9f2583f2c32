"""Decoder graphs (export/decoder.py) on ONNX Runtime CPU against diffusers' own ``decode``.

Acceptance of issue 21's first part: fp32 within 1e-4 max abs, fp16 at least 40 dB PSNR
(peak-to-peak 2: RGB in [-1, 1]), for AutoencoderKL, AutoencoderTiny and AutoencoderKLWan;
Wan decoded latent frame by latent frame with its explicit caches equals the whole-clip
decode. Sources: tiny random-weight configs, saved with save_pretrained, loaded by pomexport.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderKLWan, AutoencoderTiny

from pomexport.errors import ConfigError
from pomexport.export.decoder import OPSET, export_decoder, to_fp16

MEAN, STD = [0.1, -0.2, 0.3, 0.0], [1.5, 0.5, 2.0, 1.0]
HW = (4, 6)  # latent h, w of every graph here
CONFIGS = {
    "kl": (AutoencoderKL, dict(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=4,
        latent_channels=4, scaling_factor=0.3, shift_factor=0.1)),
    "tiny": (AutoencoderTiny, dict(
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1))),
    "wan": (AutoencoderKLWan, dict(
        base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
        temperal_downsample=[False, True, True], latents_mean=MEAN, latents_std=STD)),
}  # fmt: skip
AFFINE = {"kl": (1 / 0.3, 0.1), "tiny": (1.0, 0.0)}  # z = latent * scale + shift


def psnr(out: np.ndarray, ref: np.ndarray) -> float:
    """dB with peak-to-peak 2 (diffusers' [-1, 1] RGB)."""
    return float(10 * np.log10(4.0 / np.mean((out.astype(np.float64) - ref) ** 2)))


@pytest.fixture(scope="module")
def vaes(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    torch.manual_seed(0)
    made = {}
    for name, (cls, config) in CONFIGS.items():
        made[name] = cls(**config)
        if name == "wan":  # keep decode's clamp mostly inactive, so values are compared
            with torch.no_grad():
                made[name].decoder.conv_out.weight.mul_(0.25)
        made[name].save_pretrained(root / name)
    return root, made


@pytest.fixture(scope="module")
def exports(vaes, tmp_path_factory):
    root, _ = vaes
    out = tmp_path_factory.mktemp("decoders")
    return {
        (name, precision): export_decoder(root / name, out / f"{name}_{precision}", precision, HW)
        for name in CONFIGS
        for precision in ("fp32", "fp16")
    }


def session(model: object) -> ort.InferenceSession:
    """A CPU session of a graph file (or of serialised bytes)."""
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def reference(vaes, name: str, latent: torch.Tensor) -> np.ndarray:
    """diffusers' decode of the model's latent (the pipeline's de-scaling done by hand)."""
    _, made = vaes
    if name == "wan":
        view = (1, 4, 1, 1, 1)
        z = latent * torch.tensor(STD).view(view) + torch.tensor(MEAN).view(view)
    else:
        scale, shift = AFFINE[name]
        z = latent * scale + shift
    with torch.no_grad():
        return made[name].decode(z).sample.numpy()


def run_stream(export, latents: np.ndarray) -> tuple[np.ndarray, set]:
    """Wan frame by frame: 'first', then 'next' with the previous call's caches."""
    first, nxt = session(export.files["first"]), session(export.files["next"])
    cache_names = [i.name for i in nxt.get_inputs()][1:]
    outs = first.run(None, {"latent": latents[:, :, :1]})
    frames, caches, shapes = [outs[0]], outs[1:], set()
    for i in range(1, latents.shape[2]):
        feeds = {"latent": latents[:, :, i : i + 1], **dict(zip(cache_names, caches, strict=True))}
        outs = nxt.run(None, feeds)
        frames.append(outs[0])
        caches = outs[1:]
        shapes.add(tuple(c.shape for c in caches))
    return np.concatenate(frames, axis=2), shapes


@pytest.mark.parametrize("name", ["kl", "tiny"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_frame_decoder_on_ort_matches_diffusers(vaes, exports, name, precision):
    latent = torch.randn(1, 4, *HW, generator=torch.Generator().manual_seed(1))
    ref = reference(vaes, name, latent)
    out = session(exports[name, precision].files["decode"]).run(None, {"latent": latent.numpy()})
    assert out[0].shape == ref.shape == (1, 3, 8, 12) and out[0].dtype == np.float32
    assert ref.std() > 0.05
    err, db = float(np.abs(out[0] - ref).max()), psnr(out[0], ref)
    print(f"{name} {precision}: max abs {err:.3g}, PSNR {db:.1f} dB")
    assert (err < 1e-4) if precision == "fp32" else (db >= 40.0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_wan_stream_on_ort_equals_whole_clip_decode(vaes, exports, precision):
    latents = torch.randn(1, 4, 4, *HW, generator=torch.Generator().manual_seed(2))
    ref = reference(vaes, "wan", latents)
    out, shapes = run_stream(exports["wan", precision], latents.numpy())
    assert out.shape == ref.shape == (1, 3, 1 + 4 * 3, 32, 48)
    assert (np.abs(ref) < 1).mean() > 0.9 and ref.std() > 0.05  # values, not the clamp
    assert len(shapes) == 1
    err, db = float(np.abs(out - ref).max()), psnr(out, ref)
    print(f"wan {precision}: max abs {err:.3g}, PSNR {db:.1f} dB")
    assert (err < 1e-4) if precision == "fp32" else (db >= 40.0)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_wan_contract_is_fixed_shape_ping_pong_state(exports, precision):
    export = exports["wan", precision]
    assert export.frames_per_step == {"first": 1, "next": 4}
    contract = json.loads(json.dumps(export.io_contract))  # plain JSON data
    assert contract == export.io_contract
    nxt, first = contract["graphs"]["next"], contract["graphs"]["first"]
    assert [i["name"] for i in first["inputs"]] == ["latent"]
    by_name = {v["name"]: v for v in nxt["inputs"] + nxt["outputs"] + first["outputs"]}
    assert len(contract["state"]["pairs"]) == len(nxt["inputs"]) - 1 > 10
    for name_in, name_out in contract["state"]["pairs"]:
        assert by_name[name_in]["shape"] == by_name[name_out]["shape"]
        assert by_name[name_in]["dtype"] == by_name[name_out]["dtype"] == "float32"
        assert by_name[name_in]["shape"][2] == 2  # two frames of causal history
    assert [o["name"] for o in first["outputs"]] == [o["name"] for o in nxt["outputs"]]
    assert by_name["frames"]["dtype"] == "float32" and nxt["frames_per_call"] == 4
    assert contract["latent"]["scale"] == STD and contract["latent"]["shift"] == MEAN
    assert contract["precision"] == precision and contract["rgb"]["clamped"] is True


def test_graphs_are_static_opset_and_hashed(exports):
    from pomexport.export.api import DEFAULT_OPSET

    assert OPSET == DEFAULT_OPSET
    for export in exports.values():
        assert len(set(export.sha256().values())) == len(export.files)
        for path in export.files.values():
            assert b"stack_trace" not in path.read_bytes()  # no exporter metadata
            model = onnx.load(path)
            assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {OPSET}
            for value in list(model.graph.input) + list(model.graph.output):
                assert all(d.HasField("dim_value") for d in value.type.tensor_type.shape.dim)


def test_export_is_reproducible(vaes, exports, tmp_path):
    """The same source gives the same bytes (what a manifest's hashes rely on)."""
    root, _ = vaes
    again = export_decoder(root / "tiny", tmp_path, "fp16", HW)
    assert again.sha256() == exports["tiny", "fp16"].sha256()


def test_fp16_graphs_compute_in_fp16(exports):
    for (_, precision), export in exports.items():
        for path in export.files.values():
            weights = onnx.load(path).graph.initializer
            halves = sum(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
            assert (halves > 0) == (precision == "fp16")


def test_bad_precision_is_refused(vaes, tmp_path):
    root, _ = vaes
    with pytest.raises(ConfigError, match="precision"):
        export_decoder(root / "tiny", tmp_path, "int8")


@pytest.mark.slow
def test_fp16_overflow_scan_keeps_huge_activations_in_fp32(tmp_path):
    """A KL whose first conv outputs ~1e5 (GroupNorm brings it back): NaN in plain fp16."""
    torch.manual_seed(0)
    cls, config = CONFIGS["kl"]
    vae = cls(**config)
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e5)
        vae.decoder.conv_in.bias.mul_(1e5)
    vae.save_pretrained(tmp_path / "big")
    latent = torch.randn(1, 4, *HW, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = vae.decode(latent / 0.3 + 0.1).sample.numpy()
    fp16 = export_decoder(tmp_path / "big", tmp_path / "fp16", "fp16", HW)
    assert fp16.io_contract["fp16_overflow_fp32"]["decode"]  # the scan found the islands
    out = session(fp16.files["decode"]).run(None, {"latent": latent.numpy()})[0]
    print(f"overflowing kl fp16: PSNR {psnr(out, ref):.1f} dB")
    assert psnr(out, ref) >= 40.0
    fp32 = export_decoder(tmp_path / "big", tmp_path / "fp32", "fp32", HW)
    plain = to_fp16(onnx.load(fp32.files["decode"]))  # normalisations kept, no scan
    out = session(plain.SerializeToString()).run(None, {"latent": latent.numpy()})[0]
    assert not np.isfinite(out).all()


@pytest.mark.slow
def test_wan22_layout_stream_on_ort_equals_decode(tmp_path):
    """Wan 2.2's decoder layout (residual up blocks with DupUp3D, patch size 2), fp32."""
    torch.manual_seed(0)
    cls, config = CONFIGS["wan"]
    extra = dict(is_residual=True, patch_size=2, in_channels=12, out_channels=12)
    vae = cls(**config, **extra)
    with torch.no_grad():
        vae.decoder.conv_out.weight.mul_(0.25)
    vae.save_pretrained(tmp_path / "wan22")
    export = export_decoder(tmp_path / "wan22", tmp_path / "out", "fp32", (2, 3))
    latents = torch.randn(1, 4, 3, 2, 3, generator=torch.Generator().manual_seed(6))
    view = (1, 4, 1, 1, 1)
    with torch.no_grad():
        z = latents * torch.tensor(STD).view(view) + torch.tensor(MEAN).view(view)
        ref = vae.decode(z).sample.numpy()
    out, shapes = run_stream(export, latents.numpy())
    assert out.shape == ref.shape == (1, 3, 9, 32, 48) and len(shapes) == 1
    assert float(np.abs(out - ref).max()) < 1e-4
