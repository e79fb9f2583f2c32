"""The decoder stage in the artifact (export/artifact/decoder.py; issue 21): listed and hashed
like every file, its manifest entry checked, its graphs checked against the entry, and every
refusal one ArtifactError line naming the file or field."""

from __future__ import annotations

import json
import shutil

import pytest

from pomexport.errors import ArtifactError
from pomexport.export.artifact import MANIFEST, load_artifact
from pomexport.export.artifact.decoder import DecoderSpec


@pytest.fixture
def copy(decoders, tmp_path):
    """A private copy of the fp32 artifact with the tiny KL decoder."""
    return shutil.copytree(decoders.artifact("kl").root, tmp_path / "art")


def edit_manifest(root, change) -> None:
    manifest = json.loads((root / MANIFEST).read_text())
    change(manifest)
    (root / MANIFEST).write_text(json.dumps(manifest))


def test_the_decoder_is_listed_hashed_and_described(decoders):
    artifact = load_artifact(decoders.artifact("kl").root)  # every hash verified
    spec = artifact.decoder
    assert isinstance(spec, DecoderSpec) and spec.kind == "image" and not spec.streaming
    assert spec.source_class == "AutoencoderKL" and spec.precision == "fp32"
    assert (
        spec.files == {"decode": "decoder/decode.onnx"} and "decoder/decode.onnx" in artifact.files
    )
    assert spec.frames_per_step == {"decode": 1} and spec.rgb_frames(5) == 5
    graph = spec.graph("decode")
    assert graph["inputs"] == [{"name": "latent", "shape": [1, 4, 16, 16], "dtype": "float32"}]
    assert spec.io["latent"]["scale"] == [1 / 0.3] * 4 and spec.io["latent"]["shift"] == [0.1] * 4


def test_the_wan_entry_states_its_stream(decoders):
    spec = load_artifact(decoders.artifact("wan").root, verify=False).decoder
    assert spec.kind == "wan-stream" and spec.frames_per_step == {"first": 1, "next": 4}
    assert spec.files == {"first": "decoder/first.onnx", "next": "decoder/next.onnx"}
    assert spec.rgb_frames(1) == 1 and spec.rgb_frames(3) == 9 and len(spec.state_pairs) > 10


def test_a_missing_decoder_file_is_refused(copy):
    (copy / "decoder" / "decode.onnx").unlink()
    with pytest.raises(
        ArtifactError, match=r"decoder/decode.onnx: listed in manifest.json but missing"
    ):
        load_artifact(copy)


def test_a_tampered_decoder_file_is_refused(copy):
    path = copy / "decoder" / "decode.onnx"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size: only the hash can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"decoder/decode.onnx: sha256 mismatch"):
        load_artifact(copy)


def test_an_entry_naming_an_unlisted_file_is_refused(copy):
    edit_manifest(copy, lambda m: m["files"].pop("decoder/decode.onnx"))
    with pytest.raises(ArtifactError, match=r"decoder file decoder/decode.onnx is not listed"):
        load_artifact(copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(kind="video"), "kind 'video' is not one of"),
        (lambda e: e.update(precision="int4"), "precision must be one of"),
        (lambda e: e["frames_per_step"].update(decode=0), "frames_per_step must give"),
        (lambda e: e["files"].update(decode="model.onnx"), "must be decoder/decode.onnx"),
        (lambda e: e["io"]["graphs"].pop("decode"), "io graph 'decode' must list"),
    ],
)
def test_a_malformed_entry_is_one_line(copy, change, message):
    edit_manifest(copy, lambda m: change(m["decoder"]))
    with pytest.raises(ArtifactError, match=message) as caught:
        load_artifact(copy)
    assert "\n" not in str(caught.value)


def test_a_graph_that_contradicts_its_entry_is_refused(copy):
    def grow(manifest):
        manifest["decoder"]["io"]["graphs"]["decode"]["inputs"][0]["shape"] = [1, 4, 32, 32]

    edit_manifest(copy, grow)
    with pytest.raises(
        ArtifactError, match=r"decoder/decode.onnx: latent is not float32 \[1, 4, 32"
    ):
        load_artifact(copy)


def test_removing_the_entry_leaves_an_unlisted_stage_refused(copy):
    # The entry gone but its files still listed: they are checked as step graphs, and fail.
    edit_manifest(copy, lambda m: m.pop("decoder"))
    with pytest.raises(ArtifactError, match=r"decoder/decode.onnx: graph inputs"):
        load_artifact(copy)
