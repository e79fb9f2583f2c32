"""Shared fixtures: small models of both PoM variants with non-trivial random weights; the
skip policy (issue 23)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from pomexport.models import PoMDiT, PoMDiTConfig

VARIANTS = {
    "moments": dict(variant="moments", gate="sigmoid"),
    "powers": dict(variant="powers", gate="hardsigmoid"),
    "powers-heads": dict(variant="powers", gate="hardsigmoid", sel_heads=4),
}


def _make_model(variant: str = "moments", seed: int = 0, **changes) -> PoMDiT:
    """A tiny-sized PoM-DiT whose adaLN-zero layers are not zero (so every path matters)."""
    # Pinned here (not the `tiny` preset, which follows the bundled model's training).
    cfg = PoMDiTConfig(
        input_size=16,
        in_channels=3,
        patch_size=2,
        width=32,
        depth=2,
        num_classes=10,
        **VARIANTS[variant],
    ).replace(**changes)
    torch.manual_seed(seed)
    model = PoMDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1 if p.dim() > 1 else 0.05)
    return model.eval()


# A skip is for what this kind of machine cannot have: a GPU, TensorRT, TensorRT's headers.
# Anything else a test needs (nvcc, cmake, shellcheck, triton, a tritonserver that starts, the
# bundled weights) scripts/test.sh installs, so its absence is a failure. A skip whose reason
# names neither a GPU nor TensorRT is turned into a failure here, so none can creep in.
ALLOWED_SKIP = re.compile(r"\bGPU\b|TensorRT")


def _disallowed_skip(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    """The reason of a skip the policy refuses (None: not a skip, an xfail, or allowed)."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return None if ALLOWED_SKIP.search(reason) else reason


def _fail_disallowed_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    reason = _disallowed_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = (
            f"{reason}\nOnly a missing GPU or TensorRT may skip a test (tests/conftest.py, "
            "issue 23): install what is missing (scripts/test.sh) or make it a failure."
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_disallowed_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_disallowed_skip(outcome.get_result())


@pytest.fixture(scope="session")
def nvcc() -> str:
    """nvcc's path. Machines of this kind have the CUDA toolkit (docs/design.md §7: CI compiles the
    CUDA kernels, nvcc 13 is installed), so a missing nvcc fails instead of skipping."""
    found = shutil.which("nvcc")
    assert found, "nvcc (CUDA toolkit) not found on PATH (e.g. /usr/local/cuda/bin)"
    return found


@pytest.fixture(params=list(VARIANTS))
def variant(request) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def trt():
    """The tensorrt module; skips (with the reason) without TensorRT or a CUDA GPU."""
    # docs/design.md §7: the TensorRT tests skip without TensorRT.
    module = pytest.importorskip("tensorrt", reason="TensorRT is not installed here")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU visible to torch: TensorRT engines run on the GPU")
    return module


@pytest.fixture
def make_model():
    """Factory: ``make_model(variant, seed=0, **config_changes) -> PoMDiT`` (eval mode)."""
    return _make_model


@pytest.fixture(scope="session")
def verify_artifact(tmp_path_factory):
    """The fp32 portable artifact the verify tests share (runtime/measure and cli), exported
    once per session: the bundled model when its weights are installed, else ``tiny``."""
    import logging

    from pomexport.export import export_model
    from pomexport.models.registry import BUNDLED, bundled_path

    root = tmp_path_factory.mktemp("verify-fp32")
    name = next(iter(BUNDLED))
    name = name if bundled_path(name).is_file() else "tiny"
    for quiet in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(quiet).setLevel(logging.ERROR)
    export_model(name, root, "fp32", "portable", batch=(1, 2, 8))
    return root


@pytest.fixture(scope="session")
def ort_artifact(tmp_path_factory):
    """One fp32 artifact (both flavors) built once per session by ``pomexport.export.pipeline``:
    the bundled model when its weights are installed, else the ``tiny`` preset (seed 0).
    Returns ``(artifact, model_name)``; tests that modify it copy it first."""
    from pomexport.export.pipeline import build
    from pomexport.models.registry import DEFAULT_MODEL, bundled_path

    name = DEFAULT_MODEL if bundled_path(DEFAULT_MODEL).is_file() else "tiny"
    out = tmp_path_factory.mktemp("ort") / "artifact"
    return build(name, out, precision="fp32", backend="ort").artifact, name


@pytest.fixture(scope="session")
def stationary_artifact(tmp_path_factory):
    """A stationary-state model (issue 18: decay 0.6, max_frame_index 2; the random weights of
    ``make_model("moments")``) and its fp32 artifact, both flavors, batch 1..8, exported once
    per session. Returns ``(artifact, model)``; tests that modify it copy it first."""
    from pomexport.export import export_model

    model = _make_model("moments", decay=0.6, max_frame_index=2)
    out = tmp_path_factory.mktemp("stationary") / "fp32"
    return export_model(model, out, "fp32", "both", batch=(1, 2, 8)), model


# -- latent decoders (issue 21) ---------------------------------------------------------------
# Tiny random-weight diffusers autoencoders, built from a config and saved with save_pretrained:
# KL (SD-VAE layout) and TAESD with 4 latent channels, Wan 2.1's layout with 16 (z_dim), each
# matching a latent preset (models/presets.py).
DECODER_CONFIGS = {
    "kl": ("AutoencoderKL", dict(
        block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=4,
        latent_channels=4, scaling_factor=0.3, shift_factor=0.1)),
    "tiny": ("AutoencoderTiny", dict(
        encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
        num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1))),
    "wan": ("AutoencoderKLWan", dict(
        base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
        temperal_downsample=[False, True, True], latents_mean=[0.05 * i for i in range(16)],
        latents_std=[1.0 + 0.1 * i for i in range(16)])),
}  # fmt: skip
DECODER_PRESETS = {"kl": "sd-latent-tiny", "tiny": "sd-latent-tiny", "wan": "wan-latent-tiny"}


class DecoderFixtures:
    """Decoder source folders and artifacts built with them, each made once, when first asked."""

    def __init__(self, root) -> None:
        self.root, self.vaes, self._artifacts = root, {}, {}

    def source(self, name: str):
        """The save_pretrained folder of ``DECODER_CONFIGS[name]`` (its module in ``vaes``)."""
        folder = self.root / "sources" / name
        if name not in self.vaes:
            import diffusers

            cls, config = DECODER_CONFIGS[name]
            torch.manual_seed(0)
            vae = getattr(diffusers, cls)(**config).eval()
            if name == "wan":  # keep decode's clamp mostly inactive, so values are compared
                with torch.no_grad():
                    vae.decoder.conv_out.weight.mul_(0.25)
            vae.save_pretrained(folder)
            self.vaes[name] = vae
        return folder

    def artifact(self, name: str, precision: str = "fp32"):
        """``pomexport build PRESET --decoder SOURCE`` (ONNX Runtime, batch 1..4), built once."""
        key = (name, precision)
        if key not in self._artifacts:
            from pomexport.export.pipeline import build

            out = self.root / "artifacts" / f"{name}-{precision}"
            source = self.source(name)
            result = build(DECODER_PRESETS[name], out, precision, "ort", (1, 1, 4), decoder=source)
            self._artifacts[key] = result.artifact
        return self._artifacts[key]


@pytest.fixture(scope="session")
def decoders(tmp_path_factory) -> DecoderFixtures:
    """Tiny diffusers autoencoders and artifacts with their decoder (issue 21), made lazily."""
    return DecoderFixtures(tmp_path_factory.mktemp("decoders"))
