"""Product code uses only public names of the agent SDKs: no ``_``-prefixed import from strands
or bedrock_agentcore, and no import of one of their private modules (read with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("agent", "auth", "memory", "scripts", "telemetry", "tenant_ids")
SDKS = ("strands", "bedrock_agentcore")


def _product_files() -> list[Path]:
    return sorted(p for package in PRODUCT_PACKAGES for p in (ROOT / package).rglob("*.py"))


def private_sdk_imports(source: str) -> list[str]:
    """``module:name`` of every import of a private SDK name or module in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in SDKS:
            private_module = any(part.startswith("_") for part in node.module.split("."))
            for alias in node.names:
                if private_module or alias.name.startswith("_"):
                    found.append(f"{node.module}:{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in SDKS and any(part.startswith("_") for part in parts):
                    found.append(alias.name)
    return found


def test_the_checker_finds_what_it_must() -> None:
    assert private_sdk_imports("from strands.agent.agent import _DEFAULT_AGENT_NAME") == [
        "strands.agent.agent:_DEFAULT_AGENT_NAME"
    ]
    assert private_sdk_imports("from strands.plugins._discovery import discover_hooks") == [
        "strands.plugins._discovery:discover_hooks"
    ]
    assert private_sdk_imports("import bedrock_agentcore._utils.x") == ["bedrock_agentcore._utils.x"]
    assert private_sdk_imports("from strands import Agent\nfrom memory._x import _y") == []


def test_no_product_module_imports_a_private_sdk_name() -> None:
    files = _product_files()
    assert len(files) > 50  # the walk found the product code
    violations = {
        str(path.relative_to(ROOT)): found for path in files if (found := private_sdk_imports(path.read_text()))
    }
    assert violations == {}
