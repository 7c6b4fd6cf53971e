"""The public surface of ``memory``: the exported names are pinned, sorted, documented, and loaded
lazily (``import memory`` pulls in neither strands nor boto3)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import memory

EXPECTED = [
    "AccessDenied",
    "BackendUnavailable",
    "BedrockEmbedder",
    "ConfigurationError",
    "Embedder",
    "FencedMemoryManager",
    "IdentityTooLong",
    "InvalidInvocationState",
    "InvalidTenantId",
    "Invocation",
    "IsolationError",
    "LocalEmbedder",
    "LocalIndex",
    "LocalOutbox",
    "Memory",
    "MemoryBackend",
    "MemoryLibraryError",
    "MemoryPlugin",
    "MultiTenantS3VectorMemory",
    "MultiTenantStore",
    "NotFound",
    "Outbox",
    "OutboxEntry",
    "QueryHit",
    "RetryPolicy",
    "S3Outbox",
    "S3VectorMemory",
    "S3VectorMemoryPlugin",
    "S3VectorsIndex",
    "Scope",
    "SingleTenantStore",
    "StrandsMemoryStore",
    "Summarizer",
    "SummaryPipeline",
    "TokenVendingMachine",
    "ValidationError",
    "VectorIndex",
    "VectorRecord",
    "build_recall_tool",
    "create_embedder",
    "create_store",
    "format_injection",
    "index_name_for",
    "read_invocation",
    "set_user_hasher",
    "validate_tenant_id",
]
#: What strands-s3-vectors-memory 0.2.0 exports: every name is ours too (drop-in).
SEED_EXPORTS = ["S3VectorMemory", "MultiTenantS3VectorMemory", "S3VectorMemoryPlugin", "TokenVendingMachine",
                "IsolationError"]


def test_all_is_pinned_and_sorted() -> None:
    assert memory.__all__ == EXPECTED == sorted(EXPECTED)
    assert set(SEED_EXPORTS) <= set(memory.__all__)


@pytest.mark.parametrize("name", EXPECTED)
def test_every_name_resolves_and_is_documented(name: str) -> None:
    value = getattr(memory, name)
    assert getattr(value, "__name__", name) == name
    doc = inspect.getdoc(value)
    assert doc and len(doc) > 20, f"{name} has no docstring"


FUNCTIONS = [n for n in EXPECTED if n[0].islower()]
CLASSES = [n for n in EXPECTED if n[0].isupper()]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_public_functions_have_google_style_docstrings(name: str) -> None:
    doc = inspect.getdoc(getattr(memory, name)) or ""
    assert "Args:" in doc and "Returns:" in doc


@pytest.mark.parametrize("name", CLASSES)
def test_public_constructors_document_their_arguments(name: str) -> None:
    cls = getattr(memory, name)
    init = cls.__dict__.get("__init__")
    if getattr(cls, "_is_protocol", False):
        assert inspect.getdoc(cls)  # a protocol documents its methods, not a constructor
    elif dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
        documented = inspect.getdoc(cls) or ""
        assert "Attributes:" in documented or len(fields) <= 1, f"{name}: document its fields"
    elif init is not None and len(inspect.signature(init).parameters) > 1:
        assert "Args:" in (inspect.getdoc(init) or "") + (inspect.getdoc(cls) or ""), f"{name}.__init__"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        memory.Nope  # noqa: B018


def _imports_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(m for m in ('strands', 'boto3', 'wordllama') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return set(filter(None, out.split(",")))


def test_import_memory_is_light_and_only_strands_facing_names_load_strands() -> None:
    assert _imports_after("import memory") == set()
    assert _imports_after("from memory import Scope, InvalidTenantId, Invocation, read_invocation") == set()
    assert "strands" not in _imports_after("from memory import SingleTenantStore, create_store")
    assert "strands" in _imports_after("from memory import MemoryPlugin")


def test_the_acceptance_import_line() -> None:
    from memory import MemoryPlugin, MultiTenantS3VectorMemory, S3VectorMemory, S3VectorMemoryPlugin, TokenVendingMachine

    assert {MemoryPlugin.__module__, S3VectorMemoryPlugin.__module__} == {"memory.plugin.plugin", "memory.compat"}
    assert issubclass(MultiTenantS3VectorMemory, S3VectorMemory) and TokenVendingMachine.__module__ == "memory.stores.tvm"


def test_the_package_ships_its_types() -> None:
    """PEP 561: without ``py.typed`` a type checker skips an installed ``memory`` ("module is
    installed, but missing library stubs or py.typed marker") and every name is ``Any``."""
    assert (Path(memory.__file__).parent / "py.typed").is_file()


def test_type_checkers_see_every_public_name_as_exported() -> None:
    """``__all__`` is a literal list (a type checker does not run ``list(...)``) and every name is
    imported for type checkers, so ``from memory import MemoryPlugin`` type-checks under
    ``mypy --strict`` (no implicit re-export)."""
    tree = ast.parse(Path(memory.__file__).read_text())
    assigned = next(n.value for n in tree.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "__all__")
    assert ast.literal_eval(assigned) == EXPECTED == list(memory._EXPORTS)
    checking = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    imported = {(node.module, a.name) for node in checking.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert imported == {(module, name) for name, module in memory._EXPORTS.items()}


def test_the_recall_tools_are_typed_to_the_end() -> None:
    """``build_recall_tool`` and the seed's ``plugin.memory_tool`` say the tool returns text: a bare
    ``DecoratedFunctionTool`` is "partially unknown" to pyright's strict mode in a caller's
    ``Agent(tools=[plugin.memory_tool])``."""
    import typing

    hints = [typing.get_type_hints(memory.build_recall_tool)["return"],
             typing.get_type_hints(memory.S3VectorMemoryPlugin.memory_tool.fget)["return"]]
    assert [typing.get_args(hint)[-1:] for hint in hints] == [(str,), (str,)]
