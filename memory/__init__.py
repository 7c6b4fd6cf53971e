"""Long-term, tenant-isolated memory for Strands agents: the public surface.

Everything a user needs is importable from ``memory``; where a file lives is not part of the
API. Layers, imports flowing one way: ``plugin`` (Strands integration) -> ``pipeline``
(summaries, outbox) -> ``stores`` (tenancy, TVM) -> ``index`` (vector backends), with
``embedders`` beside the stores. ``memory.compat`` holds the drop-in names of
``strands-s3-vectors-memory`` and ``memory.strands_store`` the store for Strands'
``MemoryManager``.

Names load lazily (module ``__getattr__``): ``import memory`` imports neither strands nor boto3
nor the embedding model; a name pulls in only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AccessDenied": "memory.errors",
    "BackendUnavailable": "memory.errors",
    "BedrockEmbedder": "memory.embedders.bedrock",
    "ConfigurationError": "memory.errors",
    "Embedder": "memory.embedders.protocol",
    "FencedMemoryManager": "memory.strands_store",
    "IdentityTooLong": "memory.errors",
    "InvalidInvocationState": "memory.plugin.invocation",
    "InvalidTenantId": "memory.errors",
    "Invocation": "memory.plugin.invocation",
    "IsolationError": "memory.errors",
    "LocalEmbedder": "memory.embedders.local",
    "LocalIndex": "memory.index.local",
    "LocalOutbox": "memory.pipeline.outbox_local",
    "Memory": "memory.types",
    "MemoryBackend": "memory.stores.protocol",
    "MemoryLibraryError": "memory.errors",
    "MemoryPlugin": "memory.plugin.plugin",
    "MultiTenantS3VectorMemory": "memory.compat",
    "MultiTenantStore": "memory.stores.multi_tenant",
    "NotFound": "memory.errors",
    "Outbox": "memory.pipeline.outbox",
    "OutboxEntry": "memory.pipeline.outbox",
    "QueryHit": "memory.types",
    "RetryPolicy": "memory.pipeline.background",
    "S3Outbox": "memory.pipeline.outbox_s3",
    "S3VectorMemory": "memory.compat",
    "S3VectorMemoryPlugin": "memory.compat",
    "S3VectorsIndex": "memory.index.s3vectors",
    "Scope": "memory.types",
    "SingleTenantStore": "memory.stores.single_tenant",
    "StrandsMemoryStore": "memory.strands_store",
    "Summarizer": "memory.pipeline.summarizer",
    "SummaryPipeline": "memory.pipeline.background",
    "TokenVendingMachine": "memory.stores.tvm",
    "ValidationError": "memory.errors",
    "VectorIndex": "memory.index.protocol",
    "VectorRecord": "memory.types",
    "build_recall_tool": "memory.plugin.recall_tool",
    "create_embedder": "memory.factory",
    "create_store": "memory.factory",
    "format_injection": "memory.strands_store",
    "index_name_for": "memory.tenants",
    "read_invocation": "memory.plugin.invocation",
    "set_user_hasher": "memory.telemetry",
    "validate_tenant_id": "memory.tenants",
}

__all__ = [  # sorted; pinned by tests/unit/memory/test_package_exports.py
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

if TYPE_CHECKING:
    from memory.compat import MultiTenantS3VectorMemory, S3VectorMemory, S3VectorMemoryPlugin
    from memory.embedders.bedrock import BedrockEmbedder
    from memory.embedders.local import LocalEmbedder
    from memory.embedders.protocol import Embedder
    from memory.errors import (
        AccessDenied,
        BackendUnavailable,
        ConfigurationError,
        IdentityTooLong,
        InvalidTenantId,
        IsolationError,
        MemoryLibraryError,
        NotFound,
        ValidationError,
    )
    from memory.factory import create_embedder, create_store
    from memory.index.local import LocalIndex
    from memory.index.protocol import VectorIndex
    from memory.index.s3vectors import S3VectorsIndex
    from memory.pipeline.background import RetryPolicy, SummaryPipeline
    from memory.pipeline.outbox import Outbox, OutboxEntry
    from memory.pipeline.outbox_local import LocalOutbox
    from memory.pipeline.outbox_s3 import S3Outbox
    from memory.pipeline.summarizer import Summarizer
    from memory.plugin.invocation import InvalidInvocationState, Invocation, read_invocation
    from memory.plugin.plugin import MemoryPlugin
    from memory.plugin.recall_tool import build_recall_tool
    from memory.stores.multi_tenant import MultiTenantStore
    from memory.stores.protocol import MemoryBackend
    from memory.stores.single_tenant import SingleTenantStore
    from memory.stores.tvm import TokenVendingMachine
    from memory.strands_store import FencedMemoryManager, StrandsMemoryStore, format_injection
    from memory.telemetry import set_user_hasher
    from memory.tenants import index_name_for, validate_tenant_id
    from memory.types import Memory, QueryHit, Scope, VectorRecord


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and cache it in the module."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'memory' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
