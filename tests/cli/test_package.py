"""`pomexport package` and `pomexport verify-bundle` through click's CliRunner: the README's
package-then-verify commands on a real artifact, and one-line errors on bad input."""

from __future__ import annotations

import io
import tarfile

from click.testing import CliRunner

from pomexport.cli.main import cli


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_error_line(result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
    assert "Traceback" not in result.output


def test_package_then_verify_bundle(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    out = tmp_path / "m.tar.gz"
    result = _run("package", artifact.root, "--target", "jetson-orin-jp6", "--out", out)
    assert result.exit_code == 0, result.output
    assert "jetson-orin-jp6" in result.output and "./build.sh" in result.output
    dest = tmp_path / "device"
    result = _run("verify-bundle", out, "--extract", dest)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK ") and "TensorRT 10.3" in result.output
    assert (dest / "build.sh").is_file() and (dest / "artifact" / "manifest.json").is_file()


def test_cli_errors_are_one_line(ort_artifact, tmp_path):
    artifact, _ = ort_artifact
    missing = tmp_path / "nope"
    _one_error_line(
        _run("package", missing, "--target", "x86-trt10", "--out", tmp_path / "b.tar.gz"),
        "not an artifact directory",
    )
    not_tar = tmp_path / "junk.tar.gz"
    not_tar.write_bytes(b"not a tarball")
    _one_error_line(_run("verify-bundle", not_tar), "not a readable tar.gz")
    _one_error_line(_run("verify-bundle", tmp_path / "absent.tar.gz"), "no such bundle")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    _one_error_line(_run("verify-bundle", evil, "--extract", tmp_path / "x"), "'../escape.txt'")
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "escape.txt").exists()
    bad_target = _run("package", artifact.root, "--target", "orin", "--out", tmp_path / "b")
    assert bad_target.exit_code != 0 and "Traceback" not in bad_target.output
