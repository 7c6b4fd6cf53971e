"""Top-level packages depend one way: ``auth`` never on ``memory`` (nor on ``agent``), and the
neutral ``telemetry`` and ``tenant_ids`` packages on none of ours.

Read twice: with ``ast`` (every import statement of every module, wherever it stands) and in a
fresh interpreter that imports every module of the package and then looks at ``sys.modules``
(what it pulls in indirectly, e.g. through a neutral package)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Package -> our top-level packages it must not import.
FORBIDDEN = {
    "auth": ("memory", "agent", "scripts"),
    "telemetry": ("memory", "auth", "agent", "scripts", "tenant_ids"),
    "tenant_ids": ("memory", "auth", "agent", "scripts", "telemetry"),
}


def _modules(package: str) -> dict[str, Path]:
    return {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_a_forbidden_package(package: str) -> None:
    crossing = sorted(
        f"{name} -> {target}"
        for name, path in _modules(package).items()
        for target in _imported(path)
        if target.split(".")[0] in FORBIDDEN[package]
    )
    assert crossing == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_importing_every_module_loads_no_forbidden_package(package: str) -> None:
    modules = sorted(_modules(package))
    probe = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(done.stdout)
    assert set(modules) <= set(loaded)
    assert sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN[package]) == []
