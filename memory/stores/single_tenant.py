"""SingleTenantStore: the memories of one tenant in one vector index (see ``memory.stores.scoping``)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from memory import telemetry
from memory.embedders.protocol import Embedder, check_dimensions
from memory.errors import ValidationError
from memory.index.filters import compile_filter
from memory.index.local import LocalIndex
from memory.index.protocol import VectorIndex
from memory.index.s3vectors import S3VectorsIndex
from memory.keys import random_key
from memory.stores.scoping import (
    DEFAULT_MIN_SCORE,
    memory_from_metadata,
    ownership_filter,
    validate_scope,
    visibility_filter,
)
from memory.tenants import validate_tenant_id
from memory.types import Memory, QueryHit, Scope, VectorRecord

logger = logging.getLogger(__name__)


class SingleTenantStore:
    """Memories of one tenant in one vector index, filtered by user and agent (module docstring).

    ``tenant_id`` (optional) is the tenant this store serves: a Scope naming another tenant is
    rejected. The index is ensured lazily, once (again after :meth:`forget_tenant`).
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        *,
        tenant_id: str | None = None,
        default_min_score: float = DEFAULT_MIN_SCORE,
    ) -> None:
        """Create the store (the index is ensured on first use).

        Args:
            index: The vector index holding the tenant's memories.
            embedder: Embeds memories and queries; its dimension must match the index.
            tenant_id: The tenant served (a Scope naming another is refused); None: no check.
            default_min_score: Cosine-similarity floor when ``retrieve`` gets none.

        Raises:
            ConfigurationError: Embedder and index dimensions differ.
            InvalidTenantId: An invalid ``tenant_id``.
        """
        check_dimensions(embedder, index.dimension)
        self.index = index
        self.embedder = embedder
        self.tenant_id = validate_tenant_id(tenant_id) if tenant_id is not None else None
        self.default_min_score = default_min_score
        self._ensured = False
        self._ensure_lock = threading.Lock()

    @classmethod
    def for_local(
        cls, *, root_dir: str | Path, embedder: Embedder, index_name: str = "memory-default", **kwargs: Any
    ) -> "SingleTenantStore":
        """A store on a LocalIndex ``<root_dir>/<index_name>.sqlite3``."""
        return cls(LocalIndex(root_dir, index_name, embedder.dimension), embedder, **kwargs)

    @classmethod
    def for_s3vectors(
        cls, *, client: Any, bucket: str, index_name: str, embedder: Embedder, **kwargs: Any
    ) -> "SingleTenantStore":
        """A store on one S3 Vectors index (``client``: s3vectors client or zero-arg provider)."""
        return cls(S3VectorsIndex(client, bucket, index_name, embedder.dimension), embedder, **kwargs)

    # -- helpers ---------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the index if needed (idempotent; called by every operation)."""
        if self._ensured:
            return
        with self._ensure_lock:
            if not self._ensured:
                self.index.ensure()
                self._ensured = True

    def _check(self, scope: Scope) -> None:
        validate_scope(scope)
        if scope.tenant_id is not None and scope.tenant_id != self.tenant_id:
            raise ValidationError("scope.tenant_id does not match this store's tenant")

    def _matching(self, flt: dict[str, Any]) -> list[VectorRecord]:
        self.ensure()
        predicate = compile_filter(flt)
        return [r for r in self.index.list() if predicate(r.metadata)]

    # -- SingleTenantStoreProtocol ---------------------------------------------------------------

    @telemetry.traced("memory.store", lambda self, scope, *a, memory_type="summary", **k: {
        **telemetry.scope_attributes(scope), "memory.type": memory_type})
    def store(
        self,
        scope: Scope,
        content: str,
        *,
        conversation_id: str | None = None,
        memory_type: str = "summary",
        key: str | None = None,
    ) -> Memory:
        """Embed (purpose "index") and store one memory; the same ``key`` overwrites."""
        self._check(scope)
        if not isinstance(content, str) or not content.strip():
            raise ValidationError("memory content must be a non-empty string")
        if not isinstance(memory_type, str) or not memory_type:
            raise ValidationError("memory_type must be a non-empty string")
        (vector,) = self.embedder.embed([content], "index")
        if not any(vector):
            raise ValidationError("memory content has no embeddable words")
        metadata: dict[str, Any] = {
            "user_id": scope.user_id,
            "type": memory_type,
            "stored_at_epoch": int(time.time()),
            "content": content,
        }
        if scope.agent_name is not None:
            metadata["agent_name"] = scope.agent_name
        if conversation_id is not None:
            metadata["conversation_id"] = conversation_id
        memory_key = key or random_key()
        self.ensure()
        self.index.put([VectorRecord(memory_key, vector, metadata)])
        logger.debug("stored memory %s (%d chars)", memory_key, len(content))
        return memory_from_metadata(memory_key, metadata, self.tenant_id, None)

    def retrieve(
        self, scope: Scope, query: str, *, top_k: int = 5, min_score: float | None = None
    ) -> list[Memory]:
        """The ``top_k`` most similar visible memories with score (1 - cosine distance) >= min_score."""
        self._check(scope)
        if not isinstance(query, str) or not query.strip():
            return []
        threshold = self.default_min_score if min_score is None else min_score
        (vector,) = self.embedder.embed([query], "retrieval")
        if not any(vector):
            return []
        self.ensure()
        hits: list[QueryHit] = self.index.query(vector, top_k, visibility_filter(scope))
        memories = [memory_from_metadata(h.key, h.metadata, self.tenant_id, 1.0 - h.distance) for h in hits]
        kept = [m for m in memories if m.score is not None and m.score >= threshold]
        return sorted(kept, key=lambda m: m.score or 0.0, reverse=True)

    def list(self, scope: Scope) -> list[Memory]:
        """Every memory the scope may read, newest first."""
        self._check(scope)
        records = self._matching(visibility_filter(scope))
        memories = [memory_from_metadata(r.key, r.metadata, self.tenant_id, None) for r in records]
        return sorted(memories, key=lambda m: (m.stored_at, m.id), reverse=True)

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete the user's memories (only the agent's own if ``scope.agent_name`` is set),
        optionally only those of ``conversation_id``; returns how many were deleted."""
        self._check(scope)
        records = self._matching(ownership_filter(scope))
        if conversation_id is not None:
            records = [r for r in records if r.metadata.get("conversation_id") == conversation_id]
        keys = [r.key for r in records]
        if keys:
            self.index.delete(keys)
        logger.info("forgot %d memories", len(keys))
        return len(keys)

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        """Delete every memory of the tenant; returns how many were deleted.

        The index itself stays: deleting indexes is offboarding, an operator action
        (``python -m scripts tenant offboard``) that tenant credentials are not allowed to do.
        """
        if tenant_id is not None and tenant_id != self.tenant_id:
            raise ValidationError("tenant_id does not match this store's tenant")
        self.ensure()
        keys = [record.key for record in self.index.list()]
        if keys:
            self.index.delete(keys)
        logger.info("forgot all %d memories of index %s", len(keys), self.index.name)
        return len(keys)
