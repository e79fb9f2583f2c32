"""export/engine/builder.py: no weak typing anywhere; engine builds, cache reuse and errors.

The source scan runs everywhere. The build tests need TensorRT and a CUDA GPU: they are marked
``tensorrt`` and ``gpu`` and skip with the reason when either is missing (never faked).
"""

from __future__ import annotations

import io
import re
import shutil
import tokenize
from pathlib import Path

import pytest

from pomexport.errors import ArtifactError, BuildError, ConfigError, PluginError
from pomexport.export.artifact import TIMING_CACHE, ArtifactDraft, load_artifact

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_DIRS = ("models", "export", "runtime", "calibration", "cli")
SOURCE_SUFFIXES = {".py", ".cpp", ".h", ".hpp", ".cu", ".cuh", ".c"}
# APIs of weak typing and implicit INT8, removed in TensorRT 11 (docs/design.md §4), plus the
# ONNX Runtime TensorRT EP options that switch them on.
FORBIDDEN = re.compile(
    r"BuilderFlag\s*(\.|::)\s*k?(FP16|BF16|INT8|FP8|INT4)\b"
    r"|int8_calibrator|setInt8Calibrator|IInt8\w*Calibrator\w*"
    r"|trt_(fp16|int8|bf16)_enable"
)


def _python_code(text: str) -> str:
    """Python source without comments and string literals (docstrings may name the APIs)."""
    skipped = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", -1)}
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type not in skipped:
            kept.append(token.string)
    return " ".join(kept)


def _c_code(text: str) -> str:
    """C/C++/CUDA source without comments and string literals."""
    pattern = r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"'
    return re.sub(pattern, " ", text, flags=re.S)


def forbidden_uses(path: Path) -> list[str]:
    text = path.read_text(errors="replace")
    code = _python_code(text) if path.suffix == ".py" else _c_code(text)
    return sorted({re.sub(r"\s+", "", m.group(0)) for m in FORBIDDEN.finditer(code)})


def _package_sources() -> list[Path]:
    files = [p for p in ROOT.glob("*.py")]
    for folder in PACKAGE_DIRS:
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in SOURCE_SUFFIXES]
    return sorted(files)


def test_no_weak_typing_or_implicit_int8_api_in_the_package():
    sources = _package_sources()
    assert len(sources) > 50 and ROOT / "export" / "engine" / "builder.py" in sources
    offenders = {str(p.relative_to(ROOT)): forbidden_uses(p) for p in sources}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scanner itself can fail: code is caught, comments and strings are not."""
    py = tmp_path / "a.py"
    py.write_text('"""BuilderFlag.FP16 in a docstring"""\n# int8_calibrator\nx = 1\n')
    assert forbidden_uses(py) == []
    py.write_text("config.set_flag(trt.BuilderFlag.FP16)\nconfig.int8_calibrator = c\n")
    assert forbidden_uses(py) == ["BuilderFlag.FP16", "int8_calibrator"]
    cpp = tmp_path / "a.cpp"
    cpp.write_text('// no BuilderFlag::kINT8\nauto s = "kFP16";\nDataType t = DataType::kINT8;\n')
    assert forbidden_uses(cpp) == []
    cpp.write_text("config->setFlag(BuilderFlag::kFP16);\nclass C : IInt8EntropyCalibrator2 {};\n")
    assert forbidden_uses(cpp) == ["BuilderFlag::kFP16", "IInt8EntropyCalibrator2"]


def test_builder_options_are_checked_before_tensorrt(ort_artifact):
    from pomexport.export.engine.builder import EngineFromOnnx

    with pytest.raises(ConfigError, match="flavor must be one of"):
        EngineFromOnnx(ort_artifact[0], flavor="fast")
    with pytest.raises(ConfigError, match="workspace-mb must be >= 1"):
        EngineFromOnnx(ort_artifact[0], workspace_mb=0)


def test_plugin_library_is_shipped_hashed_and_refused_when_tampered(ort_artifact, tmp_path):
    """No TensorRT needed: the copy, its manifest hash, and the checks before any dlopen."""
    from pomexport.export.engine.builder import add_plugin_library

    root = shutil.copytree(ort_artifact[0].root, tmp_path / "artifact")
    library = tmp_path / "libpomexport_plugins.so"
    library.write_bytes(b"\x7fELF" + bytes(range(64)))
    artifact = add_plugin_library(root, library)
    path, sha256 = artifact.plugin_library
    assert path == root / "plugins" / library.name and path.read_bytes() == library.read_bytes()
    assert sha256 == artifact.files["plugins/libpomexport_plugins.so"]["sha256"]
    text = tmp_path / "notes.so"
    text.write_text("not a library")
    with pytest.raises(PluginError, match="not an ELF shared library"):
        add_plugin_library(root, text)
    path.write_bytes(b"\x7fELF" + bytes(range(1, 65)))  # same size: only the hash tells
    with pytest.raises(ArtifactError, match="plugins/libpomexport_plugins.so: sha256 mismatch"):
        load_artifact(root)


def test_cli_build_refuses_a_non_library_before_exporting(tmp_path):
    from click.testing import CliRunner

    from pomexport.cli.main import cli

    fake = tmp_path / "libfake.so"
    fake.write_text("#!/bin/sh\n")
    out = tmp_path / "a"
    args = ["build", "tiny", "--backend", "ort", "--plugin-library", str(fake), "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert lines[0].startswith("Error:") and "not an ELF shared library" in lines[0]
    assert not out.exists()


# -- with TensorRT and a GPU --------------------------------------------------------------
@pytest.fixture
def artifact_copy(ort_artifact, tmp_path):
    return load_artifact(shutil.copytree(ort_artifact[0].root, tmp_path / "artifact"))


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_is_built_listed_and_reused(trt, artifact_copy):
    from pomexport.export.engine.builder import engine_from_onnx

    first = engine_from_onnx(artifact_copy, progress=False, workspace_mb=512)
    assert not first.reused and first.flavor == "portable"
    assert first.path.is_file() and first.path.parent.name == "engines"
    assert first.key.plan_name in first.artifact.files and TIMING_CACHE in first.artifact.files
    again = engine_from_onnx(first.artifact, progress=False)
    assert again.reused and again.path == first.path and again.key == first.key
    # A different batch range is a different key: rebuilt.
    draft = ArtifactDraft(again.artifact.root, again.artifact.manifest)
    draft.manifest["batch"] = {"min": 1, "opt": 2, "max": 4}
    draft.commit()
    rebuilt = engine_from_onnx(load_artifact(again.artifact.root), progress=False)
    assert not rebuilt.reused and rebuilt.key != first.key


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_parser_errors_come_in_one_message(trt, artifact_copy):
    from pomexport.export.engine.builder import engine_from_onnx

    (artifact_copy.root / "model.onnx").write_bytes(b"not an onnx protobuf")
    ArtifactDraft(artifact_copy.root, artifact_copy.manifest).commit()
    with pytest.raises(BuildError, match=r"model\.onnx: TensorRT's ONNX parser failed with \d+"):
        engine_from_onnx(load_artifact(artifact_copy.root), flavor="portable", progress=False)


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_a_tampered_plugin_library_is_not_loaded(trt, artifact_copy, tmp_path):
    from pomexport.export.engine.builder import engine_from_onnx

    library = tmp_path / "libpomexport_plugins.so"
    library.write_bytes(b"\x7fELF not really")
    with pytest.raises(PluginError, match="does not match the expected"):
        engine_from_onnx(artifact_copy, plugin=(library, "0" * 64), progress=False)
