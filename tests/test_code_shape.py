"""Module and function size, read from the source (issue 19, docs/architecture.md).

No module of the package is over ``MAX_MODULE_LINES`` lines and no function (or method) over
``MAX_FUNCTION_LINES``, counted from its ``def`` line to its last line (decorators aside).
The package is the repository root's ``*.py`` and every ``*.py`` under its component folders.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("models", "export", "calibration", "runtime", "cli")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


def package_files() -> list[Path]:
    found = sorted(ROOT.glob("*.py"))
    for folder in FOLDERS:
        found += sorted((ROOT / folder).rglob("*.py"))
    return found


def function_lengths(path: Path) -> list[tuple[str, int, int]]:
    """(qualified name, def line, length in lines) of every function in a file."""
    found: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((name, child.lineno, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), str(path)), "")
    return found


def test_the_package_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in package_files()}
    assert {"__init__.py", "errors.py", "cli/main.py", "runtime/generator.py"} <= names
    assert not any(n.startswith("tests/") for n in names)


def test_no_module_is_over_the_limit():
    long = []
    for path in package_files():
        lines = len(path.read_text().splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(long)


def test_no_function_is_over_the_limit():
    long = []
    for path in package_files():
        for name, line, length in function_lengths(path):
            if length > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(ROOT)}:{line} {name}: {length} lines")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_function_length_counts_from_def_to_last_line(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "@decorator\ndef f():\n    x = 1\n\n    return x\n\n\n"
        "class C:\n    def g(self):\n        def inner():\n            pass\n"
    )
    assert function_lengths(source) == [("f", 2, 4), ("C.g", 9, 3), ("C.g.inner", 10, 2)]
