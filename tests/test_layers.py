"""The package's layers, read from the source (docs/architecture.md).

Every import — at module level or inside a function — goes from a layer to itself or to a
layer below it, and no underscore module or name is imported across the top-level folders
(models/, export/, calibration/, runtime/, cli/). A layer is the longest matching module
prefix in ``LAYERS``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("models", "export", "calibration", "runtime", "cli")

# (module prefix, rank): a module may import only ranks <= its own.
LAYERS = {
    "pomexport": 0,  # the package root: version and the error types
    "pomexport.errors": 0,
    "pomexport.lazy": 0,  # lazy re-exports for the packages' __init__ files
    "pomexport.models.config": 0,  # the config dataclass: torch-free, part of the format
    "pomexport.export.artifact": 0,  # the artifact format: torch-, onnx- and ORT-free core
    "pomexport.models": 1,  # PyTorch reference
    "pomexport.export": 2,  # torch -> ONNX, graph passes, lint, deploy bundles
    "pomexport.export.engine": 2,  # ONNX -> TensorRT engine (asked for by build or a backend)
    "pomexport.runtime": 3,  # load an artifact and run it: backends, the frame loop, writers
    "pomexport.calibration": 4,  # int8: runs the runtime over trajectories
    "pomexport.runtime.measure": 5,  # verify, layerwise, compare, bench, soak, plots, plan
    "pomexport.export.pipeline": 6,  # `pomexport build`: export -> int8 -> engine, one manifest
    "pomexport.runtime.serving": 6,  # Triton Inference Server
    "pomexport.cli": 7,  # the `pomexport` command: a thin shell
}


def layer(module: str) -> tuple[str, int]:
    """(prefix, rank) of the longest prefix of ``module`` in LAYERS."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer")


def modules() -> dict[str, Path]:
    found = {"pomexport": ROOT / "__init__.py"}
    for path in ROOT.glob("*.py"):
        if path.name != "__init__.py":
            found[f"pomexport.{path.stem}"] = path
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("pomexport", *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(name: str, path: Path) -> list[tuple[int, str, str | None]]:
    """(line, imported module, imported name or None) of every pomexport import in a file."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found += [(node.lineno, target, a.name) for a in node.names]
        # Lazy re-exports name their module as a string (package __init__ maps)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.fullmatch(r"pomexport(\.\w+)+", node.value):
                found.append((node.lineno, node.value, None))
    return [f for f in found if f[1] == "pomexport" or f[1].startswith("pomexport.")]


def _resolved(target: str, attr: str | None, known: dict[str, Path]) -> str:
    """``from a.b import c`` imports module a.b.c when that is a module."""
    if attr is not None and f"{target}.{attr}" in known:
        return f"{target}.{attr}"
    return target


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FOLDERS else ""


def _private(module: str, attr: str | None) -> bool:
    names = module.split(".")[1:] + ([attr] if attr else [])
    return any(n.startswith("_") and not n.startswith("__") for n in names)


def test_every_module_is_in_a_layer():
    for name in modules():
        layer(name)


def test_no_import_goes_up_a_layer():
    known = modules()
    upward = []
    for name, path in known.items():
        _, rank = layer(name)
        for line, target, attr in imports(name, path):
            module = _resolved(target, attr, known)
            above, target_rank = layer(module)
            if target_rank > rank:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({above})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_top_level_folder():
    known = modules()
    crossing = []
    for name, path in known.items():
        for line, target, attr in imports(name, path):
            module = _resolved(target, attr, known)
            shown = attr if module == target else None
            if _folder(module) != _folder(name) and _private(module, shown):
                crossing.append(f"{path.relative_to(ROOT)}:{line} imports {module} {shown or ''}")
    assert not crossing, "private names imported across folders:\n" + "\n".join(crossing)


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("pomexport.export.artifact.paths", 0),
        ("pomexport.export.fp16", 2),
        ("pomexport.runtime.measure.bench", 5),
        ("pomexport.runtime.ort_backend", 3),
        ("pomexport.cli.main", 7),
    ],
)
def test_layer_is_the_longest_prefix(module, expected):
    assert layer(module)[1] == expected
