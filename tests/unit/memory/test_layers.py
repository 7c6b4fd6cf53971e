"""memory/'s imports flow one way (plugin -> pipeline -> stores -> index), read with ``ast``:
a module imports only from its own layer or lower ones, and only the Strands-facing layers
import strands."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MEMORY = ROOT / "memory"

#: Layer of each part of memory/ (a module may import its own layer and lower ones).
LAYERS = {
    "memory.types": 0, "memory.errors": 0, "memory.keys": 0, "memory.tenants": 0, "memory.aws": 0,
    "memory.private_files": 0, "memory.telemetry": 0,
    "memory.index": 1, "memory.embedders": 1,
    "memory.stores": 2,
    "memory.factory": 3, "memory.pipeline": 3,
    "memory.plugin": 4,
    "memory.compat": 5, "memory.strands_store": 5,
}
#: The parts that may import the agent framework.
STRANDS_FACING = ("memory.plugin", "memory.pipeline.summarizer", "memory.compat",
                  "memory.strands_store")


def layer_of(module: str) -> int:
    parts = module.split(".")
    for size in (2, 1):
        key = ".".join(parts[:size])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return found


def modules() -> dict[str, Path]:
    result = {}
    for path in sorted(MEMORY.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if not name.endswith("__init__"):
            result[name] = path
    return result


def test_imports_only_go_down_the_layers() -> None:
    upward = [
        f"{name} -> {target}"
        for name, path in modules().items()
        for target in imports(path)
        if target.startswith("memory.") and layer_of(target) > layer_of(name)
    ]
    assert upward == []


def test_only_the_strands_facing_layers_import_strands() -> None:
    importers = sorted(
        name for name, path in modules().items() if any(t.split(".")[0] == "strands" for t in imports(path))
    )
    assert importers and all(name.startswith(STRANDS_FACING) for name in importers), importers


def test_the_layer_table_covers_every_module() -> None:
    for name in modules():
        layer_of(name)
