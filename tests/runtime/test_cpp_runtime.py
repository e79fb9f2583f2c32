"""The C++ runtime's CPU part through its C API (ctypes): artifact verification, schedule, noise.

libpomrt is configured and built once per session with cmake (CPU only: TensorRT is not on
this machine); the frame loop itself needs TensorRT and a GPU and is only compile-checked
(scripts/check_cpp_runtime.sh, test_trt_compile_check below).
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pomexport.errors import ArtifactError, BuildError, ConfigError
from pomexport.export.artifact import MANIFEST, load_artifact
from pomexport.export.pipeline import tensorrt_missing
from pomexport.models import get_preset
from pomexport.runtime.sampler import time_schedule

TRT_MISSING = tensorrt_missing()

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def _build_job(tmp_path_factory):
    """The cmake build, started in a thread so the export below runs beside it (2 cores)."""
    from concurrent.futures import ThreadPoolExecutor

    from pomexport.runtime.capi import build_library

    out = tmp_path_factory.mktemp("pomrt-build")
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(
            build_library, out, with_tensorrt=False, jobs=2, build_type="None", examples=True
        )


@pytest.fixture(scope="session")
def build_dir(_build_job) -> Path:
    return _build_job.result().parent


@pytest.fixture(scope="session")
def lib(build_dir):
    from pomexport.runtime.capi import load_library

    return load_library(build_dir / "libpomrt.so")


@pytest.fixture(scope="session")
def exported(tmp_path_factory, _build_job) -> Path:
    """The tiny preset (random weights) exported once by the real exporter, fp32 portable."""
    from pomexport.export import export_model

    out = tmp_path_factory.mktemp("pomrt-artifact") / "tiny"
    export_model("tiny", out, precision="fp32", flavor="portable", batch=(1, 2, 8))
    return out


@pytest.fixture
def artifact(exported, tmp_path) -> Path:
    """A private copy of the exported artifact (tests tamper with it)."""
    return Path(shutil.copytree(exported, tmp_path / "art"))


def test_valid_artifact_verifies_and_reads_the_manifest(artifact, lib):
    lib.verify_artifact(artifact)
    info = lib.artifact_info(artifact)
    cfg = get_preset("tiny")
    assert info["in_channels"] == cfg.in_channels and info["height"] == cfg.input_size
    assert info["depth"] == cfg.depth and info["state_width"] == cfg.state_width
    assert info["tokens_per_frame"] == cfg.tokens_per_frame
    assert info["num_classes"] == cfg.num_classes and info["video"] == 1
    assert (info["batch_min"], info["batch_opt"], info["batch_max"]) == (1, 2, 8)
    assert (info["precision"], info["variant"], info["model_name"]) == ("fp32", "moments", "tiny")


def test_c_unit_test_passes(build_dir):
    done = subprocess.run([str(build_dir / "pomrt_test_cpu")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks passed" in done.stdout


def test_engine_cache_entry_is_read_by_the_python_loader(build_dir, artifact):
    """The C++ engine cache records the plan in device.json, never in manifest.json (whose
    signature must hold, docs/design.md §6.1); the Python loader accepts the result. A record
    of an earlier plan of that name is dropped, others are kept."""
    import json

    name = "engines/orin-sm87-trt10.3.0.plan"
    shipped = (artifact / MANIFEST).read_bytes()
    (artifact / "engines").mkdir()
    (artifact / "engines/other.plan").write_bytes(b"other")
    other = {"sha256": _sha(artifact / "engines/other.plan"), "bytes": 5}
    records = {name: {"key": {"onnx_sha256": "0" * 64}}, "engines/other.plan": {"key": {}}}
    record = {
        "format": "pomexport-device-files",
        "format_version": 1,
        "manifest_sha256": hashlib.sha256(shipped).hexdigest(),
        "files": {"engines/other.plan": other},
        "engines": records,
    }
    (artifact / "device.json").write_text(json.dumps(record, indent=2))
    done = subprocess.run(
        [str(build_dir / "pomrt_test_manifest"), str(artifact), name],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (artifact / MANIFEST).read_bytes() == shipped
    loaded = load_artifact(artifact)
    digest = hashlib.sha256((artifact / name).read_bytes()).hexdigest()
    assert loaded.files[name] == {"sha256": digest, "bytes": (artifact / name).stat().st_size}
    assert loaded.files["engines/other.plan"] == other
    assert loaded.manifest["engines"] == {"engines/other.plan": {"key": {}}}


def _write_device_record(artifact: Path, files: dict, manifest_sha256: str | None = None) -> bytes:
    import json

    record = {
        "format": "pomexport-device-files",
        "format_version": 1,
        "manifest_sha256": manifest_sha256 or _sha(artifact / MANIFEST),
        "files": files,
    }
    data = json.dumps(record, indent=2).encode()
    (artifact / "device.json").write_bytes(data)
    return data


def test_device_record_through_the_c_api(lib, artifact, tmp_path, monkeypatch):
    """device.json (the files build.sh or the engine cache made on the device) through
    pomrt_verify_artifact: with trusted keys it must be signed by one (device.sig), bound to the
    manifest's bytes, list only device-built names none of which the manifest lists, and its
    files are hashed like the manifest's (issue 22)."""
    from pomexport.export.artifact.signing import (
        keygen,
        load_private_key,
        load_public_key,
        sign_artifact,
        signature_document,
    )

    ops_key, ops_pub = keygen(tmp_path / "ops")
    dev_key, dev_pub = keygen(tmp_path / "dev")
    sign_artifact(artifact, ops_key)
    plan = artifact / "engines/orin-sm87-trt10.3.0.plan"
    plan.parent.mkdir()
    plan.write_bytes(b"plan bytes")
    files = {"engines/orin-sm87-trt10.3.0.plan": {"sha256": _sha(plan), "bytes": 10}}
    data = _write_device_record(artifact, files)
    lib.verify_artifact(artifact)  # no keys: integrity only

    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", f"{ops_pub}:{dev_pub}")
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 2 trusted key"):
        lib.verify_artifact(artifact)
    (artifact / "device.sig").write_bytes(signature_document(data, load_private_key(dev_key)))
    lib.verify_artifact(artifact)
    assert lib.artifact_info(artifact)["num_classes"] == _TINY.num_classes
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", str(ops_pub))  # the device key not trusted
    dev_id = load_public_key(dev_pub).key_id
    with pytest.raises(ArtifactError, match=rf"device\.json: signed by key {dev_id}, which is not"):
        lib.verify_artifact(artifact)
    monkeypatch.delenv("POMEXPORT_TRUSTED_KEYS")

    plan.write_bytes(b"PLAN BYTES")  # swapped after the record was made
    with pytest.raises(
        ArtifactError, match=r"engines/orin-sm87-trt10\.3\.0\.plan: sha256 mismatch"
    ):
        lib.verify_artifact(artifact)
    plan.write_bytes(b"plan bytes")
    _write_device_record(artifact, files, manifest_sha256="0" * 64)
    with pytest.raises(
        ArtifactError, match=r"device\.json: records files built for another manifest"
    ):
        lib.verify_artifact(artifact)
    for name in ("model.onnx", "engines/../model.onnx", "engines/sub/x.plan", "plugins/.hidden.so"):
        _write_device_record(artifact, {**files, name: {"sha256": "0" * 64, "bytes": 1}})
        with pytest.raises(ArtifactError, match=r"device\.json: may list only plugins/\*\.so"):
            lib.verify_artifact(artifact)


def test_example_builds_and_explains_the_cpu_only_build(build_dir, tmp_path):
    done = subprocess.run(
        [str(build_dir / "generate_y4m"), str(tmp_path), str(tmp_path / "out.y4m")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "built without TensorRT" in done.stderr


def test_frame_loop_kernels_compile_with_nvcc(nvcc, tmp_path):
    """The CUDA half of the runtime (no TensorRT in it) compiles for Orin (sm_87) and Thor."""
    cpp = REPO / "runtime" / "cpp"
    arches = ["-gencode", "arch=compute_87,code=sm_87"]
    arches += ["-gencode", "arch=compute_110,code=sm_110"]
    done = subprocess.run(
        [nvcc, "-std=c++17", *arches, "-Werror", "all-warnings", "-I", str(cpp / "include")]
        + ["-c", str(cpp / "src" / "kernels.cu"), "-o", str(tmp_path / "kernels.o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_library_reports_cpu_only_build(lib):
    assert not lib.has_tensorrt
    assert lib.version.startswith("pomrt ")


def test_flipped_byte_refused(lib, artifact):
    path = artifact / "model.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"model\.onnx: sha256 mismatch"):
        lib.verify_artifact(artifact)


def test_missing_file_refused(lib, artifact):
    (artifact / "model.onnx").unlink()
    with pytest.raises(ArtifactError, match=r"model\.onnx: listed in manifest\.json but missing"):
        lib.verify_artifact(artifact)


def test_decoder_stage_is_hashed_not_taken_for_a_step_graph(lib, decoders, tmp_path):
    """An artifact with a decoder stage (issue 21) verifies: its graphs are hashed like every
    file, not checked against the step contract; a changed one is refused."""
    art = Path(shutil.copytree(decoders.artifact("kl").root, tmp_path / "art"))
    lib.verify_artifact(art)
    path = art / "decoder" / "decode.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"decoder/decode\.onnx: sha256 mismatch"):
        lib.verify_artifact(art)


@pytest.mark.parametrize("name", ["kl", "wan"])
def test_decoder_entry_is_read_as_python_reads_it(lib, decoders, name):
    """pomrt_artifact_decoder (issue 21): the C++ loader's decoder entry, its graphs checked
    against it, says what the Python loader's DecoderSpec says."""
    spec = decoders.artifact(name).decoder
    info = lib.artifact_decoder(decoders.artifact(name).root)
    first = spec.graph("first" if spec.streaming else "decode")
    latent, rgb = first["inputs"][0]["shape"], first["outputs"][0]["shape"]
    assert (info["kind"], info["precision"], info["source_class"]) == (
        spec.kind,
        spec.precision,
        spec.source_class,
    )
    assert info["streaming"] == int(spec.streaming)
    assert [info[k] for k in ("latent_channels", "latent_height", "latent_width")] == [
        latent[1],
        *latent[-2:],
    ]
    assert [info["rgb_height"], info["rgb_width"]] == rgb[-2:]
    assert info["frames_first"] == spec.rgb_frames(1)
    assert info["frames_next"] == spec.rgb_frames(2) - spec.rgb_frames(1)
    caches = {e["name"]: e["shape"] for e in spec.graph("next")["inputs"]} if spec.streaming else {}
    assert info["cache_tensors"] == len(spec.state_pairs) == (len(caches) - 1 if caches else 0)
    assert info["cache_floats"] == sum(int(np.prod(caches[i])) for i, _ in spec.state_pairs)


def test_artifact_without_decoder_has_none(lib, artifact):
    assert lib.artifact_decoder(artifact) is None


def _edit_decoder(art: Path, edit) -> None:
    import json

    manifest = json.loads((art / MANIFEST).read_text())
    edit(manifest["decoder"])
    (art / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(kind="video"), r"decoder kind .*video.* is not one of"),
        (lambda d: d.update(batch=2), r"decoder precision must be one of .* and batch 1"),
        (lambda d: d["frames_per_step"].update(next=0), r"frames_per_step must give first, next"),
        (lambda d: d["files"].pop("next"), r"decoder files must name the graphs first, next"),
        (lambda d: d["files"].update(next="decoder/n.onnx"), r"file of 'next' must be"),
        (
            lambda d: d["io"]["graphs"]["next"]["inputs"][0]["shape"].__setitem__(1, 3),
            r"decoder/next\.onnx: latent is not float32 \[1, 3,",
        ),
        (
            lambda d: d["io"]["graphs"]["first"]["outputs"].reverse(),
            r"decoder/first\.onnx: graph outputs .*differ from the decoder entry's",
        ),
    ],
)
def test_decoder_entry_refused_as_python_refuses_it(lib, decoders, tmp_path, edit, message):
    """An edited decoder entry (manifest.json is not hashed) is refused by both loaders, with
    the same words: the C++ runtime never sizes a buffer from an entry its graphs contradict."""
    art = Path(shutil.copytree(decoders.artifact("wan").root, tmp_path / "art"))
    _edit_decoder(art, edit)
    with pytest.raises(ArtifactError, match=message):
        load_artifact(art)
    with pytest.raises(ArtifactError, match=message):
        lib.artifact_decoder(art)


_H100 = ("10.3.0.26", "NVIDIA H100 80GB HBM3", 90)


def _with_decoder_engines(art: Path) -> list:
    """``art`` with the plans and records the Python builder writes for an H100 on TensorRT
    10.3.0.26 (decoder_engine.py's names and engine_record; the plans' bytes are stand-ins)."""
    from pomexport.export.artifact import edit_artifact
    from pomexport.export.artifact.decoder import KEY
    from pomexport.export.artifact.engines import engine_record
    from pomexport.export.engine.decoder_engine import ENGINE_FLAVOR, decoder_engine_plan

    engines = decoder_engine_plan(load_artifact(art), *_H100)
    with edit_artifact(art) as draft:
        entry = dict(draft.manifest[KEY])
        records = {}
        for e in engines:
            draft.write(e.plan_name, lambda tmp, e=e: tmp.write_bytes(f"plan {e.role}".encode()))
            records[e.plan_name] = engine_record(e.key, ENGINE_FLAVOR, "2026-12-07T00:00:00Z")
        draft.manifest[KEY] = {**entry, "engines": records}
    return engines


def test_decoder_engines_chosen_as_the_python_builder_records_them(lib, decoders, tmp_path):
    """pomrt_artifact_decoder_engine (issue 21): the plan a TensorRT runtime runs per decoder
    role is the one Python's builder wrote and counts as cached for that target; nothing for
    another GPU or TensorRT release, a record of an earlier graph, or a plan without a record.
    (The runtime itself, which deserialises and runs them, needs TensorRT and a GPU.)"""
    from pomexport.export.engine.decoder_engine import cached_decoder_engine

    art = Path(shutil.copytree(decoders.artifact("wan").root, tmp_path / "art"))
    with pytest.raises(
        BuildError, match=r"decoder/first-nvidia-h100-80gb-hbm3-sm90-trt10\.3\.0\.plan: not in"
    ):
        lib.artifact_decoder_engine(art, "first", "10.3.0", _H100[1], 90)
    engines = _with_decoder_engines(art)
    assert {e.role for e in engines} == {"first", "next"}
    for e in engines:
        assert cached_decoder_engine(load_artifact(art), e)
        assert lib.artifact_decoder_engine(art, e.role, "10.3.0", _H100[1], 90) == e.plan_name
        assert lib.artifact_decoder_engine(art, e.role, *_H100) == e.plan_name
    with pytest.raises(
        BuildError, match=r"decoder/next-orin-sm87-trt10\.3\.0\.plan: not in the artifact"
    ):
        lib.artifact_decoder_engine(art, "next", "10.3.0", "Orin", 87)
    with pytest.raises(BuildError, match=r"trt10\.13\.0\.plan: not in the artifact"):
        lib.artifact_decoder_engine(art, "next", "10.13.0", _H100[1], 90)
    with pytest.raises(ConfigError, match=r"a wan-stream decoder has no such graph"):
        lib.artifact_decoder_engine(art, "decode", *_H100)

    # The record of a plan built from an earlier next.onnx: its key (and so its digest) names
    # that graph's sha256.
    stale = next(e for e in engines if e.role == "next")
    earlier = dataclasses.replace(stale.key, onnx_sha256="0" * 64)
    _edit_decoder(
        art,
        lambda d: d["engines"][stale.plan_name].update(
            key=earlier.to_dict(), digest=earlier.digest()
        ),
    )
    assert not cached_decoder_engine(load_artifact(art), stale)
    with pytest.raises(BuildError, match=r"built from an earlier decoder/next\.onnx"):
        lib.artifact_decoder_engine(art, "next", *_H100)
    _edit_decoder(art, lambda d: d.pop("engines"))
    with pytest.raises(BuildError, match=r"listed without an engine record"):
        lib.artifact_decoder_engine(art, "first", *_H100)
    plan = art / stale.plan_name
    plan.write_bytes(plan.read_bytes() + b"x")  # a plan is hashed like every listed file
    with pytest.raises(ArtifactError, match=r"next-nvidia-h100-80gb-hbm3-sm90-trt10\.3\.0\.plan"):
        lib.artifact_decoder_engine(art, "next", *_H100)


def test_decoder_engines_recorded_in_device_json_are_chosen(lib, decoders, tmp_path, monkeypatch):
    """The decoder plans build.sh builds on the device (device.json, the manifest as shipped;
    docs/design.md §6.1) through the C API: chosen like the manifest's (both sources in one
    artifact), verified like every device file; a name of no decoder role, one the manifest
    lists, a changed plan, an unsigned record with trusted keys refused as Python refuses them."""
    import json

    from pomexport.export.artifact.device import record_device_files
    from pomexport.export.artifact.engines import engine_record
    from pomexport.export.artifact.signing import (
        keygen,
        load_private_key,
        sign_artifact,
        signature_document,
    )
    from pomexport.export.engine.decoder_engine import decoder_engine_plan

    monkeypatch.delenv("POMEXPORT_TRUSTED_KEYS", raising=False)
    art = Path(shutil.copytree(decoders.artifact("wan").root, tmp_path / "art"))
    shipped = _with_decoder_engines(art)  # the H100's, in the manifest's decoder entry
    engines = decoder_engine_plan(load_artifact(art), "10.3.0", "Orin", 87)  # as build.sh
    files = {e.plan_name: f"orin {e.role}".encode() for e in engines}
    stamp = "2026-12-07T00:00:00Z"
    records = {e.plan_name: engine_record(e.key, "portable", stamp) for e in engines}
    record_device_files(art, files, records, trusted=[])
    for e, h100 in zip(engines, shipped, strict=True):
        assert lib.artifact_decoder_engine(art, e.role, "10.3.0.26", "Orin", 87) == e.plan_name
        assert lib.artifact_decoder_engine(art, e.role, *_H100) == h100.plan_name

    ops_key, ops_pub = keygen(tmp_path / "ops")
    dev_key, dev_pub = keygen(tmp_path / "dev")
    sign_artifact(art, ops_key)
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", f"{ops_pub}:{dev_pub}")
    with pytest.raises(ArtifactError, match=r"device\.json: unsigned, and 2 trusted key"):
        lib.artifact_decoder_engine(art, "first", "10.3.0", "Orin", 87)
    data = (art / "device.json").read_bytes()
    (art / "device.sig").write_bytes(signature_document(data, load_private_key(dev_key)))
    assert lib.artifact_decoder_engine(art, "next", "10.3.0", "Orin", 87) == engines[1].plan_name
    monkeypatch.delenv("POMEXPORT_TRUSTED_KEYS")

    doc = json.loads(data)
    for name, refusal in (
        (
            "decoder/decode-orin-sm87-trt10.3.0.plan",
            r"is not the engine of a decoder role of this artifact \(roles: first, next\)",
        ),
        (shipped[0].plan_name, r"is already listed in manifest\.json"),
        ("decoder/first.plan", r"device\.json: may list only plugins/\*\.so"),
    ):
        changed = {**doc, "files": {**doc["files"], name: {"sha256": "0" * 64, "bytes": 1}}}
        (art / "device.json").write_text(json.dumps(changed))
        with pytest.raises(ArtifactError, match=refusal):
            lib.verify_artifact(art)
    (art / "device.json").write_bytes(data)
    (art / engines[0].plan_name).write_bytes(b"ORIN first")  # same size, other bytes
    with pytest.raises(ArtifactError, match=r"first-orin-sm87-trt10\.3\.0\.plan: sha256 mismatch"):
        lib.verify_artifact(art)


def test_decoding_calls_need_a_tensorrt_build(lib):
    """pomrt_decode_info / pomrt_next_rgb in a CPU-only build: UNSUPPORTED, saying why."""
    written = ctypes.c_int32(5)
    out = np.empty(3 * 4 * 4, dtype=np.float32)
    ptr = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    with pytest.raises(BuildError, match="built without TensorRT"):
        lib.call("pomrt_next_rgb", None, 0, ptr, out.nbytes, ctypes.byref(written))
    assert written.value == 0


def test_extra_unlisted_file_refused(lib, artifact):
    (artifact / "engines").mkdir()
    (artifact / "engines" / "extra.plan").write_bytes(b"not listed")
    with pytest.raises(ArtifactError, match=r"engines/extra\.plan: present .* but not listed"):
        lib.verify_artifact(artifact)
    # Dot-files are temp files of atomic writes: ignored, as by the Python writer.
    (artifact / "engines" / "extra.plan").unlink()
    (artifact / ".manifest.json.tmp").write_bytes(b"")
    lib.verify_artifact(artifact)


def _list(artifact: Path, name: str, sha256: str = "0" * 64) -> None:
    """Add a name to the manifest's file table by hand (what a malicious manifest would do)."""
    import json

    manifest = json.loads((artifact / MANIFEST).read_text())
    manifest["files"][name] = {"sha256": sha256, "bytes": 1}
    (artifact / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.mark.parametrize("name", ["../outside.bin", "engines/../../outside.bin", "..\\outside.bin"])
def test_dotdot_path_refused(lib, artifact, name):
    _list(artifact, name)
    with pytest.raises(ArtifactError, match=r"manifest\.json: refusing path '.*outside\.bin'"):
        lib.verify_artifact(artifact)


def test_absolute_path_refused(lib, artifact, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x")
    _list(artifact, str(outside))
    with pytest.raises(ArtifactError, match=rf"refusing path '{outside}'"):
        lib.verify_artifact(artifact)


def test_escaping_symlink_refused(lib, artifact, tmp_path):
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"secret")
    os.symlink(outside, artifact / "weights.bin")
    from pomexport.export.artifact.paths import sha256_file

    _list(artifact, "weights.bin", sha256_file(outside))
    with pytest.raises(ArtifactError, match=r"'weights\.bin' leaves the artifact directory"):
        lib.verify_artifact(artifact)


def test_hard_linked_file_refused(lib, artifact, tmp_path):
    """Same rule as the Python loader: a listed file hard-linked elsewhere is refused even
    though its bytes (and hash) are right."""
    os.link(artifact / "model.onnx", tmp_path / "elsewhere.onnx")
    with pytest.raises(ArtifactError, match=r"model\.onnx: has 2 hard links; copy the artifact"):
        lib.verify_artifact(artifact)


def test_not_an_artifact(lib, tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json: missing"):
        lib.verify_artifact(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        lib.verify_artifact(tmp_path)


@pytest.mark.parametrize(("steps", "shift"), [(1, 1.0), (4, 1.0), (20, 1.0), (7, 3.0), (50, 0.5)])
def test_schedule_matches_python_sampler(lib, steps, shift):
    expected = time_schedule(steps, shift).numpy()
    got = lib.schedule(steps, shift)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got[0] == 1.0 and got[-1] == 0.0


def test_schedule_rejects_bad_input(lib):
    with pytest.raises(ConfigError, match="steps must be >= 1"):
        lib.schedule(0)
    with pytest.raises(ConfigError, match="shift must be"):
        lib.schedule(4, -1.0)


def test_noise_is_deterministic_and_standard_normal(lib):
    a = lib.noise(7, 0, 3, (3, 64, 64))
    assert np.array_equal(a, lib.noise(7, 0, 3, (3, 64, 64)))
    assert not np.allclose(a, lib.noise(7, 1, 3, (3, 64, 64)))  # another stream
    assert not np.allclose(a, lib.noise(7, 0, 4, (3, 64, 64)))  # another frame
    # 12288 samples: standard errors 0.009 (mean) and 0.013 (variance); 4-sigma bounds.
    assert abs(float(a.mean())) < 0.04 and abs(float(a.var()) - 1.0) < 0.06


def test_runtime_needs_tensorrt_build(lib, artifact):
    from pomexport.runtime.capi import CppRuntime

    with pytest.raises(BuildError, match="built without TensorRT"):
        CppRuntime(lib, artifact)


# -- stationary state (issue 18): nothing in C++ knows the decay ---------------------------
def test_stationary_manifest_is_read_with_or_without_the_new_keys(
    lib, stationary_artifact, tmp_path
):
    """The C++ manifest reader takes the config keys it needs and ignores the rest: a decay and
    a max_frame_index (an int or null), or neither key (an artifact from before issue 18)."""
    import json

    from pomexport.export.artifact import write_manifest

    art, model = stationary_artifact
    root = Path(shutil.copytree(art.root, tmp_path / "art"))
    manifest = json.loads((root / MANIFEST).read_text())
    config = manifest["model"]["config"]
    assert (config["decay"], config["max_frame_index"]) == (0.6, 2)
    cfg = model.cfg
    for change in ("as written", "null bound", "neither key"):
        if change == "null bound":
            config["max_frame_index"] = None
        elif change == "neither key":
            del config["decay"], config["max_frame_index"]
        write_manifest(root, manifest)
        lib.verify_artifact(root)
        info = lib.artifact_info(root)
        assert (info["depth"], info["state_width"]) == (cfg.depth, cfg.state_width), change
        assert info["tokens_per_frame"] == cfg.tokens_per_frame and info["video"] == 1, change


def _ort_step(onnx_path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return lambda feed: session.run(None, feed)


def _torch_step(model):
    import torch

    def step(feed):
        with torch.no_grad():
            v, state = model.step(*(torch.from_numpy(feed[k]) for k in feed))
        return v.numpy(), state.numpy()

    return step


def _feed(x, t: float, label, frame_index, state, count) -> dict[str, np.ndarray]:
    t = np.full(len(label), t, dtype=np.float32)
    names = ("x_t", "t", "label", "frame_index", "state", "count")
    return dict(zip(names, (x, t, label, frame_index, state, count), strict=True))


def cpp_frame_loop(step, lib, cfg, seed: int, label: int, frames: int, steps: int, scale: float):
    """runtime/cpp/README.md's frame loop for slot 0, step by step: the C API's noise and
    schedule, CFG rows (label, null label), Euler, then the commit; ``count`` advances by
    tokens_per_frame and ``frame_index`` by 1, the only state bookkeeping the C++ side does.
    ``step(feed) -> (v, state_out)`` runs the step graph. Returns (frames, C_in, H, W)."""
    rows = 2 if scale != 1.0 else 1
    label_rows = np.array([label, cfg.num_classes][:rows], dtype=np.int64)
    state = np.zeros((cfg.depth, rows, cfg.state_width), dtype=np.float32)
    count = np.zeros(rows, dtype=np.float32)
    times = lib.schedule(steps)
    out = []
    for f in range(frames):
        x = lib.noise(seed, 0, f, (cfg.in_channels, cfg.input_size, cfg.input_size))
        index = np.full(rows, f, dtype=np.int64)
        for t, t_next in zip(times[:-1], times[1:], strict=True):
            v, _ = step(_feed(np.stack([x] * rows), t, label_rows, index, state, count))
            v = v[1] + scale * (v[0] - v[1]) if rows == 2 else v[0]
            x = x + (t_next - t) * v
        _, state = step(_feed(np.stack([x] * rows), 0.0, label_rows, index, state, count))
        count = count + np.float32(cfg.tokens_per_frame)
        out.append(x)
    return np.stack(out)


def _psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    """PSNR in dB of latents in [-1, 1] (peak-to-peak 2), as tests/runtime/test_ort_backend.py."""
    mse = float(np.mean((actual.astype(np.float64) - expected) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(4.0 / mse)


def test_stationary_artifact_needs_only_the_cpp_loops_bookkeeping(lib, stationary_artifact):
    """The C++ loop's bookkeeping (count in tokens, frame_index + 1, the C API's noise and
    schedule) on a decay-0.6 artifact (4 frames, past max_frame_index 2, CFG) gives the torch
    model's frames within the ONNX Runtime bound (PSNR 50 dB): the discount and the bound are
    in the graph, so the C++ runtime needs nothing of them. Its TensorRT half is compared below
    (GPU + TensorRT)."""
    art, model = stationary_artifact
    kw = dict(seed=5, label=3, frames=4, steps=2, scale=2.0)
    ours = cpp_frame_loop(_ort_step(art.onnx_path("portable")), lib, art.config, **kw)
    reference = cpp_frame_loop(_torch_step(model), lib, model.cfg, **kw)
    per_frame = [_psnr(ours[f], reference[f]) for f in range(4)]
    assert min(per_frame) >= 50.0, per_frame


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(TRT_MISSING is not None, reason=f"needs TensorRT and a CUDA GPU: {TRT_MISSING}")
def test_stationary_artifact_generates_through_the_c_api_as_python_ort(
    stationary_artifact, tmp_path
):
    """libpomrt built with TensorRT generates the decay-0.6 artifact (portable flavor, engine
    built on first use into a copy) as the same loop does on ONNX Runtime: PSNR >= 50 dB."""
    from pomexport.runtime.capi import CppRuntime, build_library, load_library

    art, _ = stationary_artifact
    trt_lib = load_library(build_library(tmp_path / "build", with_tensorrt=True, jobs=4))
    root = Path(shutil.copytree(art.root, tmp_path / "art"))  # the engine is cached in it
    with CppRuntime(trt_lib, root, slots=1, steps=2, cfg_scale=2.0) as runtime:
        runtime.reset_stream(0, seed=5, label=3)
        frames = np.stack([runtime.next_frame(0) for _ in range(4)])
    kw = dict(seed=5, label=3, frames=4, steps=2, scale=2.0)
    expected = cpp_frame_loop(_ort_step(art.onnx_path("portable")), trt_lib, art.config, **kw)
    per_frame = [_psnr(frames[f], expected[f]) for f in range(4)]
    assert min(per_frame) >= 50.0, per_frame


def test_missing_library_is_a_clear_error(tmp_path, monkeypatch):
    from pomexport.runtime.capi import load_library

    monkeypatch.setenv("POMRT_LIBRARY", str(tmp_path / "libpomrt.so"))
    with pytest.raises(BuildError, match=r"libpomrt\.so not found .* `cmake -S"):
        load_library()


TRT_HEADER_DIRS = [p for p in os.environ.get("POMEXPORT_TRT_HEADERS", "").split(os.pathsep) if p]
_HEADERS_HINT = (
    "set POMEXPORT_TRT_HEADERS to TensorRT include/ folders (copies of NVIDIA/TensorRT "
    "release/10.3 and main kept outside the repository, e.g. /tmp/trt-headers/*/include, "
    "which CI does not have)"
)


@pytest.mark.tensorrt
@pytest.mark.skipif(not TRT_HEADER_DIRS, reason=f"needs TensorRT headers: {_HEADERS_HINT}")
@pytest.mark.parametrize("include_dir", TRT_HEADER_DIRS)
def test_trt_compile_check(nvcc, include_dir):
    """scripts/check_cpp_runtime.sh passes; NvOnnxParser.h comes from the include folder or,
    for release/10.x (onnx-tensorrt submodule), from $POMRT_ONNX_PARSER_INCLUDE."""
    include = Path(include_dir)
    parser = (
        []
        if (include / "NvOnnxParser.h").is_file()
        else [os.environ.get("POMRT_ONNX_PARSER_INCLUDE", "")]
    )
    if parser and not Path(parser[0], "NvOnnxParser.h").is_file():
        where = f"not in {include} (release/10.x keeps it in the onnx-tensorrt submodule)"
        pytest.skip(f"needs TensorRT's NvOnnxParser.h, {where}: set POMRT_ONNX_PARSER_INCLUDE")
    script = REPO / "scripts" / "check_cpp_runtime.sh"
    done = subprocess.run(
        ["bash", str(script), str(include), *parser, "87"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "OK: pomrt" in done.stdout


# -- the plugin library, loaded once per process (pomrt_plugin_load; the table pomrt_create uses)
# This CPU build loads with dlopen + the getCreators check instead of TensorRT's registry; the
# table in front of both loaders (same sha256 or path -> the same load) is what is tested here.
_EMPTY_PLUGIN = """// A plugin library without creators: the entry points loadLibrary looks up.
#include <cstdint>
#define API extern "C" __attribute__((visibility("default")))
API void* const* getCreators(int32_t& nbCreators) { nbCreators = 0; return nullptr; }
API void setLoggerFinder(void*) {}
API int32_t buildTag() { return BUILD_TAG; }
"""


def _empty_plugin(folder: Path, tag: int) -> Path:
    """Compile the empty plugin library; ``tag`` makes builds with different bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    source, out = folder / "empty_plugin.cpp", folder / f"libempty_plugin{tag}.so"
    source.write_text(_EMPTY_PLUGIN)
    compiler = shutil.which("g++") or "c++"
    cmd = [compiler, "-shared", "-fPIC", "-fvisibility=hidden", f"-DBUILD_TAG={tag}"]
    done = subprocess.run([*cmd, str(source), "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _mapped(path: Path) -> bool:
    """Whether the library ``path`` names is loaded into this process. pomrt loads the bytes it
    verified from a sealed memfd named after the file (issue 22), never the path itself."""
    maps = Path("/proc/self/maps").read_text()
    assert str(path.resolve()) not in maps  # the file on disk is never what runs
    return f"/memfd:pomrt-verified:{path.name} " in maps


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_plugin_library_is_loaded_once_and_shared(lib, tmp_path):
    from pomexport.errors import PluginError

    plugin = _empty_plugin(tmp_path / "a", 1)
    copy = Path(shutil.copy(plugin, tmp_path / "copy.so"))  # same bytes, another path
    before = lib.plugins_loaded
    first = lib.load_plugin(plugin, _sha(plugin))
    assert not first.reused and lib.plugins_loaded == before + 1 and _mapped(plugin)
    second = lib.load_plugin(plugin, _sha(plugin))
    third = lib.load_plugin(copy, _sha(copy))
    assert second.reused and third.reused and lib.plugins_loaded == before + 1
    assert not _mapped(copy)  # the same library is not loaded a second time from elsewhere
    for use in (first, second):
        use.release()
    assert lib.plugins_loaded == before + 1 and _mapped(plugin)  # `third` still holds it
    third.release()
    assert lib.plugins_loaded == before and not _mapped(plugin)
    with pytest.raises(PluginError, match="does not match the expected"):
        lib.load_plugin(plugin, "0" * 64)


def test_plugin_load_refuses_a_second_build_in_one_process(lib, tmp_path):
    from pomexport.errors import PluginError

    plugin, other = _empty_plugin(tmp_path / "a", 1), _empty_plugin(tmp_path / "b", 2)
    assert _sha(plugin) != _sha(other)
    with lib.load_plugin(plugin, _sha(plugin)):
        with pytest.raises(PluginError, match="another build of the plugin library is loaded"):
            lib.load_plugin(other, _sha(other))
        replaced = tmp_path / "replaced.so"
        shutil.copy(other, replaced)
        os.replace(replaced, plugin)  # a new file at the loaded path (new inode, safe)
        with pytest.raises(PluginError, match="loaded earlier in this process with sha256"):
            lib.load_plugin(plugin, _sha(other))
    with lib.load_plugin(other, _sha(other)) as use:  # the first one released: loads
        assert not use.reused
    not_a_plugin = lib.path  # libpomrt.so exports no getCreators
    with pytest.raises(PluginError, match="not a TensorRT plugin library"):
        lib.load_plugin(not_a_plugin, _sha(not_a_plugin))
    with pytest.raises(PluginError, match="cannot open"):
        lib.load_plugin(tmp_path / "missing.so", "0" * 64)


def test_check_plugin_example_loads_and_shares(build_dir, tmp_path):
    plugin = _empty_plugin(tmp_path, 3)
    done = subprocess.run(
        [str(build_dir / "check_plugin"), str(plugin), _sha(plugin)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "a second load shares the first" in done.stdout
    done = subprocess.run([str(build_dir / "check_plugin"), str(plugin), "0" * 64], text=True,
                          capture_output=True)  # fmt: skip
    assert done.returncode == 1 and "does not match the expected" in done.stderr


def _build_real_plugin(include_dir: str, out: Path) -> Path:
    """libpomexport_plugins.so against TensorRT headers, by scripts/check_trt_headers.sh (it
    links no libnvinfer, and runs the plugin's self test on the way)."""
    library = out / "libpomexport_plugins.so"
    script = REPO / "scripts" / "check_trt_headers.sh"
    done = subprocess.run(
        ["bash", str(script), include_dir],
        env={**os.environ, "PLUGIN_OUT": str(library)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return library


@pytest.mark.tensorrt
@pytest.mark.skipif(not TRT_HEADER_DIRS, reason=f"needs TensorRT headers: {_HEADERS_HINT}")
def test_real_plugin_library_loads_once_through_the_c_api(lib, nvcc, tmp_path):
    """libpomexport_plugins.so (built against the first TensorRT header folder) is dlopen'ed
    by this CPU build without libnvinfer, once, however many times it is asked for."""
    plugin = _build_real_plugin(TRT_HEADER_DIRS[0], tmp_path)
    before = lib.plugins_loaded
    with (
        lib.load_plugin(plugin, _sha(plugin)) as first,
        lib.load_plugin(plugin, _sha(plugin)) as again,
    ):
        assert not first.reused and again.reused and lib.plugins_loaded == before + 1
        assert _mapped(plugin)
    assert lib.plugins_loaded == before


def test_signed_artifact_is_not_an_unlisted_file(lib, artifact, tmp_path):
    """manifest.sig sits beside manifest.json, unlisted (issue 22): the C++ loader's listing
    rule exempts it as Python's does."""
    from pomexport.export.artifact.signing import keygen, sign_artifact

    private, _ = keygen(tmp_path / "key")
    sign_artifact(artifact, private)
    lib.verify_artifact(artifact)
    (artifact / "manifest.sig.extra").write_text("but nothing else")
    with pytest.raises(ArtifactError, match=r"manifest\.sig\.extra: present in .* not listed"):
        lib.verify_artifact(artifact)


def test_signature_refusals_through_the_c_api(lib, artifact, tmp_path, monkeypatch):
    """The C++ loader (libcrypto) enforces POMEXPORT_TRUSTED_KEYS like Python: a signed
    artifact loads; unsigned, another key's and edited-after-signing ones are refused with
    Python's words and key ids (issue 22)."""
    from pomexport.export.artifact.signing import keygen, load_public_key, sign_artifact

    a_key, a_pub = keygen(tmp_path / "a")
    b_key, b_pub = keygen(tmp_path / "b")
    monkeypatch.setenv("POMEXPORT_TRUSTED_KEYS", str(a_pub))
    with pytest.raises(ArtifactError, match=r"manifest\.json: unsigned, and 1 trusted key"):
        lib.verify_artifact(artifact)
    sign_artifact(artifact, b_key)
    other = load_public_key(b_pub).key_id
    with pytest.raises(ArtifactError, match=rf"signed by key {other}, which is not a trusted key"):
        lib.verify_artifact(artifact)
    sign_artifact(artifact, a_key)
    lib.verify_artifact(artifact)
    manifest = artifact / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"fp32"', b'"fp16"', 1))
    with pytest.raises(ArtifactError, match=r"signature by key [0-9a-f]{16} does not match"):
        lib.verify_artifact(artifact)


# -- the manifest cannot lie about shapes (issue 22): the C++ loader reads the ONNX graph ------


def _rehash(artifact: Path) -> None:
    """Rewrite the manifest's file table for the files as they are now (what an attacker does)."""
    import json

    data = json.loads((artifact / MANIFEST).read_text())
    for name in data["files"]:
        data["files"][name] = {
            "sha256": _sha(artifact / name),
            "bytes": (artifact / name).stat().st_size,
        }
    (artifact / MANIFEST).write_text(json.dumps(data, indent=2))


def _edit_config(artifact: Path, consistent: bool, **changes) -> None:
    """Change ``model.config``; ``consistent``: also rewrite ``io`` from the edited config and
    re-hash, a manifest that agrees with itself and lies only against the graph."""
    import json

    from pomexport.export.artifact import io_contract
    from pomexport.models.config import PoMDiTConfig

    data = json.loads((artifact / MANIFEST).read_text())
    data["model"]["config"].update(changes)
    if consistent:
        data["io"] = io_contract(PoMDiTConfig.from_dict(data["model"]["config"]), "float32")
    (artifact / MANIFEST).write_text(json.dumps(data, indent=2))
    if consistent:
        _rehash(artifact)


_TINY = get_preset("tiny")
_L, _C, _CIN, _K = _TINY.depth, _TINY.state_width, _TINY.in_channels, _TINY.num_classes
# field -> (edit, refusal with io left as it was, refusal with io rewritten and re-hashed)
_CONFIG_EDITS = {
    "width": (
        {"width": 128},
        rf'manifest\.json: io state shape \[{_L}, "B", {_C}\] but its model config gives \[{_L},'
        rf' "B", '
        rf"{_C * 128 // _TINY.width}\]",
        rf"model(\.plugin)?\.onnx: state axis 2 is {_C} in the graph but .*\(width\*expansion",
    ),
    "depth": (
        {"depth": 400},
        rf'io state shape \[{_L}, "B", {_C}\] but its model config gives \[400, "B", {_C}\]',
        rf"model(\.plugin)?\.onnx: state axis 0 is {_L} in the graph but .*\(depth\) says 400",
    ),
    "channels": (
        {"in_channels": 64},
        rf'io x_t shape \["B", {_CIN}, 16, 16\] but its model config gives \["B", 64, 16, 16\]',
        rf"model(\.plugin)?\.onnx: x_t axis 1 is {_CIN} in the graph but .*\(in_channels\) says 64",
    ),
    "classes": (
        {"num_classes": 1000},
        rf"model(\.plugin)?\.onnx: the label table is \[{_K + 1}, {_TINY.width}\] but .*says"
        rf" \[1001, ",
        rf"model(\.plugin)?\.onnx: the label table is \[{_K + 1}, {_TINY.width}\] but .*says"
        rf" \[1001, ",
    ),
}


@pytest.mark.parametrize(
    "consistent",
    [False, True],
    ids=["edited", "edited-io-rewritten-rehashed"],
)
@pytest.mark.parametrize("field", list(_CONFIG_EDITS))
def test_config_edit_refused_before_any_buffer(lib, artifact, field, consistent):
    """pomrt_verify_artifact / pomrt_artifact_info (what pomrt_create runs before allocating)
    refuse a model config that does not describe the ONNX graph, with one line."""
    changes, plain, rewritten = _CONFIG_EDITS[field]
    _edit_config(artifact, consistent, **changes)
    for call in (lib.verify_artifact, lib.artifact_info):
        with pytest.raises(ArtifactError, match=rewritten if consistent else plain) as refused:
            call(artifact)
        assert "\n" not in str(refused.value)


def test_config_edits_that_keep_the_state_width_are_refused_by_the_initializers(lib, artifact):
    """width x2 with expansion /2 keeps C (the state axis); the label table still tells."""
    _edit_config(artifact, True, width=2 * _TINY.width, expansion=_TINY.expansion // 2)
    with pytest.raises(ArtifactError, match=r"the label table is .* \(num_classes \+ 1, width\)"):
        lib.verify_artifact(artifact)


def test_unreadable_onnx_refused_even_when_rehashed(lib, artifact):
    path = artifact / "model.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # cut inside a field
    _rehash(artifact)
    with pytest.raises(ArtifactError, match=r"model\.onnx: not a readable ONNX model \("):
        lib.verify_artifact(artifact)
    path.write_bytes(b"\x3a\xff\xff\xff\xff\x0f")  # graph field claiming 4 GiB
    _rehash(artifact)
    with pytest.raises(ArtifactError, match=r"runs past the end of the file"):
        lib.verify_artifact(artifact)


def test_wrong_size_refused_before_hashing(lib, artifact):
    """A 4 GiB sparse model.onnx is refused from its size, unread (well under a second)."""
    import time

    with open(artifact / "model.onnx", "r+b") as f:
        f.truncate(4 << 30)
    start = time.monotonic()
    with pytest.raises(
        ArtifactError, match=r"model\.onnx: 4294967296 bytes but manifest\.json says"
    ):
        lib.verify_artifact(artifact)
    assert time.monotonic() - start < 1.0


# -- verified bytes are the bytes loaded (issue 22) -------------------------------------------


def test_plugin_swapped_after_the_check_is_not_what_loads(build_dir, tmp_path):
    """pomrt_test_pinned drives the plugin table with a loader that swaps the library file for
    another build between the hash check and the load: the verified bytes (buildTag 1) load,
    not the swapped-in file (buildTag 2). Also: sealed copies cannot be written."""
    a, b = _empty_plugin(tmp_path / "a", 1), _empty_plugin(tmp_path / "b", 2)
    done = subprocess.run(
        [str(build_dir / "pomrt_test_pinned"), str(a), str(b)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "loaded buildTag 1 after the file was swapped" in done.stdout


def test_plugin_rewritten_after_load_is_refused_not_reused(lib, tmp_path):
    """The running copy is the sealed one; the file rewritten in place is hashed again on the
    next load and refused."""
    from pomexport.errors import PluginError

    plugin, other = _empty_plugin(tmp_path / "a", 1), _empty_plugin(tmp_path / "b", 2)
    sha = _sha(plugin)
    with lib.load_plugin(plugin, sha):
        plugin.write_bytes(other.read_bytes())  # same inode, new bytes
        assert _mapped(plugin)
        with pytest.raises(PluginError, match="does not match the expected"):
            lib.load_plugin(plugin, sha)


def test_external_data_must_be_listed(lib, artifact):
    """The C++ loader reads the external-data locations from the graph (issue 22): each must
    be a listed file inside the artifact (the engine builder then parses verified copies)."""
    import json

    import onnx

    model = onnx.load(artifact / "model.onnx")
    onnx.save(model, artifact / "model.onnx", save_as_external_data=True,
              location="model.onnx.data", size_threshold=1024)  # fmt: skip
    data = json.loads((artifact / MANIFEST).read_text())
    data["files"]["model.onnx.data"] = {"sha256": "", "bytes": 0}
    (artifact / MANIFEST).write_text(json.dumps(data, indent=2))
    _rehash(artifact)
    lib.verify_artifact(artifact)
    data = json.loads((artifact / MANIFEST).read_text())
    del data["files"]["model.onnx.data"]
    (artifact / MANIFEST).write_text(json.dumps(data, indent=2))
    with pytest.raises(
        ArtifactError, match=r"model\.onnx: external data 'model\.onnx\.data' is not listed"
    ):
        lib.verify_artifact(artifact)
