"""export/artifact/engines.py: engine names, the engine-cache key and the optimization profile.

No TensorRT needed: these are the plain-data parts of the builder, run on any machine.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import ArtifactDraft, load_artifact
from pomexport.export.artifact.engines import (
    EngineKey,
    cached_engine,
    engine_name,
    gpu_slug,
    profile_shapes,
    trt_release,
    with_engine_record,
)

SHAPES = {"x_t": ((1, 3, 16, 16), (2, 3, 16, 16), (8, 3, 16, 16)), "t": ((1,), (2,), (8,))}
BASE = dict(onnx_sha256="ab" * 32, trt_version="10.3.0.26", gpu_name="NVIDIA H100 80GB HBM3", sm=90)


def _key(shapes=SHAPES, **changes) -> EngineKey:
    fields = {**BASE, **changes}
    return EngineKey.create(shapes=shapes, **fields)


# -- names ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("gpu", "sm", "version", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 90, "10.3.0.26", "nvidia-h100-80gb-hbm3-sm90-trt10.3.0.plan"),
        ("Orin (nvgpu)", 87, "10.3.0", "orin-nvgpu-sm87-trt10.3.0.plan"),
        ("NVIDIA Thor", 110, "11.1", "nvidia-thor-sm110-trt11.1.0.plan"),
    ],
)  # fmt: skip
def test_engine_file_is_named_after_gpu_sm_and_tensorrt(gpu, sm, version, expected):
    assert engine_name(gpu, sm, version) == f"engines/{expected}"
    assert _key(gpu_name=gpu, sm=sm, trt_version=version).plan_name == f"engines/{expected}"


def test_names_refuse_what_cannot_name_a_file():
    with pytest.raises(ArtifactError, match="no letters or digits"):
        gpu_slug(" / ")
    with pytest.raises(ArtifactError, match="TensorRT version"):
        trt_release("ten")
    with pytest.raises(ArtifactError, match="compute capability"):
        engine_name("GPU", 9, "10.3.0")
    assert gpu_slug("  NVIDIA--GeForce RTX 4090 ") == "nvidia-geforce-rtx-4090"


# -- the cache key ----------------------------------------------------------------------
def test_key_is_stable_for_equal_inputs():
    reordered = dict(reversed(list(SHAPES.items())))
    assert _key().digest() == _key().digest() == _key(shapes=reordered).digest()
    assert _key() == _key(shapes=reordered)
    assert len(_key().digest()) == 64


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"trt_version": "10.3.1.2"},
        {"trt_version": "11.1.0.0"},
        {"gpu_name": "NVIDIA H200"},
        {"sm": 89},
        {"shapes": {**SHAPES, "t": ((1,), (1,), (8,))}},  # opt changed
        {"shapes": {**SHAPES, "x_t": ((1, 3, 16, 16), (2, 3, 16, 16), (16, 3, 16, 16))}},
        {"shapes": {"x_t": SHAPES["x_t"]}},  # an input dropped
    ],
)
def test_key_changes_with_each_component(change):
    assert _key(**change).digest() != _key().digest()


# -- profile from a real exported artifact ----------------------------------------------
def test_profile_shapes_of_an_exported_artifact(ort_artifact):
    artifact = ort_artifact[0]
    cfg, (lo, opt, hi) = artifact.config, artifact.batch
    shapes = profile_shapes(artifact)
    assert list(shapes) == ["x_t", "t", "label", "frame_index", "state", "count"]
    image = (cfg.in_channels, cfg.input_size, cfg.input_size)
    assert shapes["x_t"] == ((lo, *image), (opt, *image), (hi, *image))
    for name in ("t", "label", "frame_index", "count"):
        assert shapes[name] == ((lo,), (opt,), (hi,))
    depth, width = cfg.depth, cfg.state_width
    assert shapes["state"] == ((depth, lo, width), (depth, opt, width), (depth, hi, width))
    assert (lo, opt, hi) == (1, 1, 8)  # export/pipeline.py's default batch range


def test_cached_engine_only_under_the_recorded_key(ort_artifact, tmp_path):
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "artifact")
    artifact = load_artifact(root)
    key = _key(shapes=profile_shapes(artifact), onnx_sha256=artifact.files["model.onnx"]["sha256"])
    assert cached_engine(artifact, key) is None  # no plan yet
    (root / key.plan_name).parent.mkdir()
    (root / key.plan_name).write_bytes(b"plan bytes")
    ArtifactDraft(root, artifact.manifest).commit()
    assert cached_engine(load_artifact(root), key) is None  # listed, but no key recorded
    manifest = with_engine_record(artifact.manifest, key, "portable", "2026-01-01T00:00:00Z")
    ArtifactDraft(root, manifest).commit()
    artifact = load_artifact(root)
    assert cached_engine(artifact, key) == root / key.plan_name
    assert cached_engine(artifact, dataclasses.replace(key, onnx_sha256="0" * 64)) is None
    assert artifact.manifest["engines"][key.plan_name]["flavor"] == "portable"


def test_profile_refuses_unresolved_dims(ort_artifact, tmp_path):
    root = shutil.copytree(ort_artifact[0].root, tmp_path / "artifact")
    draft = ArtifactDraft(root, load_artifact(root).manifest)
    draft.manifest["io"]["inputs"][0]["shape"] = ["B", "C_in", "H", 16]
    draft.commit()
    # Since issue 22 the loader refuses a manifest whose io contradicts its config before
    # profile_shapes sees it; either way no TensorRT profile is made from an unknown dim.
    with pytest.raises(ArtifactError, match="unresolved dims|contradicts itself"):
        profile_shapes(load_artifact(root))


def test_recorded_engines_are_the_listed_plans_with_a_record():
    from pomexport.export.artifact.engines import recorded_engines

    files = {"engines/a.plan": {}, "engines/b.plan": {}, "model.onnx": {}}
    records = {"engines/b.plan": {"key": {}}, "engines/gone.plan": {"key": {}}}
    assert recorded_engines({"files": files, "engines": records}) == ["engines/b.plan"]
    assert recorded_engines({"files": files}) == []  # plans without records (C++ runtime)
