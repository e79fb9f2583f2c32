"""Ed25519 signatures on artifacts and bundles (issue 22): signed ones load with the trusted
key, keys come from the argument, ``--trusted-key`` or ``POMEXPORT_TRUSTED_KEYS``, unsigned
use without keys says so once, and a rewritten manifest drops its stale signature. The
refusals (unsigned, another key, edited after signing) are corpus cases in tests/hardening."""

from __future__ import annotations

import logging
import stat
import tarfile

import pytest
from click.testing import CliRunner

from pomexport.cli.main import cli
from pomexport.errors import ArtifactError, ConfigError
from pomexport.export.artifact import load_artifact, signing, write_manifest
from pomexport.export.artifact.signing import (
    ENV,
    MANIFEST_SIGNATURE,
    keygen,
    load_public_key,
    sign_artifact,
)
from pomexport.export.bundle import package
from pomexport.export.bundle_check import verify_bundle


@pytest.fixture
def pair(tmp_path):
    private, public = keygen(tmp_path / "k")
    return private, public


def _artifact(tmp_path, ort_artifact):
    import shutil

    return shutil.copytree(ort_artifact[0].root, tmp_path / "art")


def test_keygen_private_key_is_private_and_never_overwritten(tmp_path, pair):
    private, public = pair
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    with pytest.raises(ConfigError, match="exists; refusing to overwrite a key"):
        keygen(tmp_path / "k")


def test_signed_artifact_loads_with_its_key_and_env(tmp_path, pair, ort_artifact, monkeypatch):
    private, public = pair
    root = _artifact(tmp_path, ort_artifact)
    sign_artifact(root, private)
    assert load_artifact(root, trusted=[load_public_key(public)]).model_name
    monkeypatch.setenv(ENV, str(public))
    assert load_artifact(root).model_name  # the environment's key, no argument
    (root / MANIFEST_SIGNATURE).unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json: unsigned, and 1 trusted key"):
        load_artifact(root)


def test_unsigned_without_keys_warns_once(tmp_path, ort_artifact, monkeypatch, caplog):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(signing, "_warned", False)
    root = _artifact(tmp_path, ort_artifact)
    with caplog.at_level(logging.WARNING, logger="pomexport.export.artifact.signing"):
        load_artifact(root)
        load_artifact(root)
    warnings = [r for r in caplog.records if "no trusted keys configured" in r.message]
    assert len(warnings) == 1


def test_a_caller_that_vouches_loads_unsigned_files_and_says_nothing(
    tmp_path, pair, ort_artifact, monkeypatch, caplog
):
    """``trusted=()``: a build or the bench reading back what it wrote; the keys configured
    for loaders do not apply and the 'no trusted keys' line is not said for it."""
    _, public = pair
    root = _artifact(tmp_path, ort_artifact)
    monkeypatch.setattr(signing, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="pomexport.export.artifact.signing"):
        monkeypatch.setenv(ENV, str(public))
        with pytest.raises(ArtifactError, match="unsigned, and 1 trusted key"):
            load_artifact(root)
        assert load_artifact(root, trusted=()).model_name
        monkeypatch.delenv(ENV)
        assert load_artifact(root, trusted=()).model_name
    assert not [r for r in caplog.records if "trusted keys" in r.getMessage()]


def test_rewriting_the_manifest_drops_its_signature(tmp_path, pair, ort_artifact):
    private, _ = pair
    root = _artifact(tmp_path, ort_artifact)
    sign_artifact(root, private)
    manifest = load_artifact(root).manifest
    write_manifest(root, {k: v for k, v in manifest.items() if k != "files"})
    assert not (root / MANIFEST_SIGNATURE).exists()  # it signed bytes that are gone


def test_signed_bundle_verifies_and_its_artifact_loads(tmp_path, pair, ort_artifact):
    private, public = pair
    key = load_public_key(public)
    out = tmp_path / "b.tar.gz"
    package(ort_artifact[0].root, "jetson-orin-jp6", out, sign_key=private)
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    assert {"bundle.sig", "artifact/manifest.sig"} <= names
    report = verify_bundle(out, extract=tmp_path / "dest", trusted=[key])
    assert report.extracted == tmp_path / "dest"
    load_artifact(tmp_path / "dest" / "artifact", trusted=[key])


def test_cli_keygen_and_verify_bundle_trusted_key(tmp_path, ort_artifact):
    runner = CliRunner()
    result = runner.invoke(cli, ["keygen", str(tmp_path / "ops")])
    assert result.exit_code == 0 and "key id" in result.output, result.output
    other = keygen(tmp_path / "other")[1]
    out = tmp_path / "b.tar.gz"
    args = ["package", str(ort_artifact[0].root), "--target", "x86-trt10", "-o", str(out)]
    result = runner.invoke(cli, [*args, "--sign", str(tmp_path / "ops.key")])
    assert result.exit_code == 0, result.output
    ok = runner.invoke(cli, ["verify-bundle", str(out), "--trusted-key", str(tmp_path / "ops.pub")])
    assert ok.exit_code == 0 and ok.output.startswith("OK "), ok.output
    bad = runner.invoke(cli, ["verify-bundle", str(out), "--trusted-key", str(other)])
    lines = bad.output.strip().splitlines()
    assert bad.exit_code == 1 and len(lines) == 1 and "which is not a trusted key" in lines[0]
