"""TF32 is off in every TensorRT engine build of the repository (docs/design.md §4: a tensor's type
comes from the ONNX; TF32, on by default in TensorRT and trtexec, would run fp32 GEMMs with
10-bit mantissas).

The build paths are found by scanning the sources, so a new one is checked too:
- Python: every function that creates a builder config clears ``trt.BuilderFlag.TF32`` in it;
- C++: every function that creates a builder config clears ``BuilderFlag::kTF32`` in it;
- trtexec: every engine build command (``--onnx=``) in a script, a Python string or a doc
  carries ``--noTF32``; the bundle's generated line is checked as generated;
- nothing anywhere sets TF32.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from pomexport.export import bundle

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("runtime", "export", "calibration", "cli", "models", "scripts")


def _sources(*suffixes: str) -> list[Path]:
    """Tracked files (and new ones not ignored) under SOURCE_DIRS with these suffixes."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *SOURCE_DIRS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if name.endswith(suffixes) and (REPO / name).is_file()]


def _python_functions(path: Path):
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _calls(function: ast.AST, method: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(function)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == method
    ]


def _is_tf32(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "TF32"


def test_python_builders_clear_tf32():
    builders = []
    for path in _sources(".py"):
        for function in _python_functions(path):
            if not _calls(function, "create_builder_config"):
                continue
            builders.append(f"{path.relative_to(REPO)}::{function.name}")
            cleared = [c for c in _calls(function, "clear_flag") if c.args and _is_tf32(c.args[0])]
            assert cleared, f"{builders[-1]} creates a builder config and leaves TF32 on"
        for call in _calls(ast.parse(path.read_text()), "set_flag"):
            assert not (call.args and _is_tf32(call.args[0])), f"{path} sets TF32"
    assert "export/engine/builder.py::_config" in builders  # the scan sees the known builder


# A C++ function: a line at column 0 opening a signature, up to the matching closing brace at
# column 0 (the project's brace style: clang-format, Allman).
_CPP_FUNCTION = re.compile(r"^[A-Za-z][^;{}\n]*\([^;{}]*\)[^;{}\n]*\n\{\n.*?^\}\n", re.S | re.M)


def test_cpp_builders_clear_tf32():
    builders = []
    for path in _sources(".cpp", ".cu", ".hpp", ".h"):
        text = path.read_text()
        assert not re.search(r"setFlag\(\s*(nvinfer1::)?BuilderFlag::kTF32", text), path
        for match in _CPP_FUNCTION.finditer(text):
            body = match.group(0)
            if "createBuilderConfig(" not in body:
                continue
            name = body.split("(", 1)[0].split()[-1]
            builders.append(f"{path.relative_to(REPO)}::{name}")
            cleared = re.search(r"clearFlag\(\s*(nvinfer1::)?BuilderFlag::kTF32\s*\)", body)
            assert cleared, f"{builders[-1]} creates a builder config and leaves TF32 on"
    assert "runtime/cpp/src/engine.cpp::buildPlan" in builders  # the scan sees the known one


def _shell_commands(text: str) -> list[str]:
    """Logical lines of a shell script (backslash continuations joined)."""
    return text.replace("\\\n", " ").splitlines()


def _python_strings(path: Path) -> list[str]:
    """Every string literal, f-strings with their constant parts (adjacent literals joined)."""
    nodes = list(ast.walk(ast.parse(path.read_text())))
    parts = {id(v) for n in nodes if isinstance(n, ast.JoinedStr) for v in n.values}
    strings = []
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            strings.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            strings.append("".join(v.value for v in node.values if isinstance(v, ast.Constant)))
    return strings


def _trtexec_builds(lines: list[str]) -> list[str]:
    return [line for line in lines if "trtexec" in line and "--onnx" in line]


def test_trtexec_builds_carry_no_tf32():
    found = []
    for path in _sources(".sh", ".md", ".py"):
        if path.suffix == ".sh":
            commands = _trtexec_builds(_shell_commands(path.read_text()))
        elif path.suffix == ".md":
            commands = _trtexec_builds(path.read_text().splitlines())
        else:
            commands = _trtexec_builds(_python_strings(path))
        for command in commands:
            found.append(str(path.relative_to(REPO)))
            assert "--noTF32" in command, f"{path.relative_to(REPO)}: {command.strip()}"
    assert {"export/data/bundle_build.sh", "export/bundle.py"} <= set(found)
    # ... and the line the bundle really writes (bundle.json, README.md)
    shapes = {"min": "x_t:1x3x16x16", "opt": "x_t:1x3x16x16", "max": "x_t:2x3x16x16"}
    assert "--noTF32" in bundle._trtexec_line(shapes, 0).split()
