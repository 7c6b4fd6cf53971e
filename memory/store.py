"""Memory stores: one index for one tenant (MemoryStore) or one index per tenant (MultiTenantMemoryStore).

Agent rule. A memory stored with ``Scope.agent_name=None`` is a user-level, shared memory:
every agent of that user sees it. With ``Scope.agent_name`` set, retrieval and listing return
that agent's own memories plus the user's shared ones (``agent_name == name OR agent_name
absent``); with ``agent_name=None`` (a supervisor) they return every memory of the user,
whichever agent stored it. ``forget`` with an agent name deletes only that agent's own
memories; without one it deletes all of the user's memories.

Metadata stored per memory: ``user_id``, ``agent_name`` (absent when None), ``type``,
``stored_at_epoch`` (int seconds), and the non-filterable ``content`` and ``conversation_id``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from cachetools import LRUCache

from memory.embedders import check_dimensions
from memory.errors import ConfigurationError, ValidationError
from memory.filters import compile_filter
from memory.keys import random_key
from memory.local_index import LocalIndex
from memory.models import Memory, QueryHit, Scope, VectorRecord
from memory.protocols import Embedder, VectorIndex
from memory.s3vectors_index import S3VectorsIndex
from memory.tenants import index_name_for, validate_tenant_id
from memory.tvm import TokenVendingMachine

logger = logging.getLogger(__name__)

DEFAULT_MIN_SCORE = 0.0


def _validate_scope(scope: Scope) -> None:
    if not isinstance(scope, Scope):
        raise ValidationError("scope must be a memory.models.Scope")
    if not isinstance(scope.user_id, str) or not scope.user_id:
        raise ValidationError("scope.user_id must be a non-empty string")
    if scope.agent_name is not None and (not isinstance(scope.agent_name, str) or not scope.agent_name):
        raise ValidationError("scope.agent_name must be None or a non-empty string")


def visibility_filter(scope: Scope) -> dict[str, Any]:
    """The metadata filter of the memories ``scope`` may read (see the module's agent rule)."""
    if scope.agent_name is None:
        return {"user_id": {"$eq": scope.user_id}}
    return {
        "$and": [
            {"user_id": {"$eq": scope.user_id}},
            {
                "$or": [
                    {"agent_name": {"$eq": scope.agent_name}},
                    {"agent_name": {"$exists": False}},
                ]
            },
        ]
    }


def _ownership_filter(scope: Scope) -> dict[str, Any]:
    """The memories ``forget(scope)`` deletes: the user's, or only the agent's own."""
    if scope.agent_name is None:
        return {"user_id": {"$eq": scope.user_id}}
    return {"user_id": {"$eq": scope.user_id}, "agent_name": {"$eq": scope.agent_name}}


def _to_memory(key: str, metadata: dict[str, Any], tenant_id: str | None, score: float | None) -> Memory:
    return Memory(
        id=key,
        content=str(metadata.get("content", "")),
        user_id=str(metadata.get("user_id", "")),
        stored_at=datetime.fromtimestamp(int(metadata.get("stored_at_epoch", 0)), tz=timezone.utc),
        memory_type=str(metadata.get("type", "summary")),
        agent_name=metadata.get("agent_name"),
        conversation_id=metadata.get("conversation_id"),
        tenant_id=tenant_id,
        score=score,
    )


class MemoryStore:
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
    ) -> "MemoryStore":
        """A store on a LocalIndex ``<root_dir>/<index_name>.sqlite3``."""
        return cls(LocalIndex(root_dir, index_name, embedder.dimension), embedder, **kwargs)

    @classmethod
    def for_s3vectors(
        cls, *, client: Any, bucket: str, index_name: str, embedder: Embedder, **kwargs: Any
    ) -> "MemoryStore":
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
        _validate_scope(scope)
        if scope.tenant_id is not None and scope.tenant_id != self.tenant_id:
            raise ValidationError("scope.tenant_id does not match this store's tenant")

    def _matching(self, flt: dict[str, Any]) -> list[VectorRecord]:
        self.ensure()
        predicate = compile_filter(flt)
        return [r for r in self.index.list() if predicate(r.metadata)]

    # -- MemoryStoreProtocol ---------------------------------------------------------------

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
        return _to_memory(memory_key, metadata, self.tenant_id, None)

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
        memories = [_to_memory(h.key, h.metadata, self.tenant_id, 1.0 - h.distance) for h in hits]
        kept = [m for m in memories if m.score is not None and m.score >= threshold]
        return sorted(kept, key=lambda m: m.score or 0.0, reverse=True)

    def list(self, scope: Scope) -> list[Memory]:
        """Every memory the scope may read, newest first."""
        self._check(scope)
        records = self._matching(visibility_filter(scope))
        memories = [_to_memory(r.key, r.metadata, self.tenant_id, None) for r in records]
        return sorted(memories, key=lambda m: (m.stored_at, m.id), reverse=True)

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete the user's memories (only the agent's own if ``scope.agent_name`` is set),
        optionally only those of ``conversation_id``; returns how many were deleted."""
        self._check(scope)
        records = self._matching(_ownership_filter(scope))
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


class MultiTenantMemoryStore:
    """One index per tenant (``memory-<tenantId>``); ``Scope.tenant_id`` is required.

    ``index_factory(tenant_id)`` builds a tenant's index; per-tenant stores are cached (LRU,
    ``max_cached_tenants``) and each index is ensured once. Tenant ids are validated before
    they become index names.
    """

    def __init__(
        self,
        index_factory: Callable[[str], VectorIndex],
        embedder: Embedder,
        *,
        default_min_score: float = DEFAULT_MIN_SCORE,
        max_cached_tenants: int = 1024,
    ) -> None:
        self._index_factory = index_factory
        self.embedder = embedder
        self.default_min_score = default_min_score
        self._stores: LRUCache[str, MemoryStore] = LRUCache(maxsize=max_cached_tenants)
        self._lock = threading.Lock()

    @classmethod
    def for_s3vectors(
        cls,
        *,
        bucket: str,
        role_arn: str | None,
        region: str,
        embedder: Embedder,
        tvm: TokenVendingMachine | None = None,
        session_name_prefix: str = "agent-memory",
        **kwargs: Any,
    ) -> "MultiTenantMemoryStore":
        """S3 Vectors backend; every call for a tenant uses that tenant's TVM credentials."""
        if not role_arn:
            raise ConfigurationError(
                "MultiTenantMemoryStore on S3 Vectors needs the TVM role ARN (tenant isolation); "
                "use MultiTenantMemoryStore.for_local for the embedded backend"
            )
        if not bucket:
            raise ConfigurationError("MultiTenantMemoryStore on S3 Vectors needs a vector bucket")
        vending = tvm or TokenVendingMachine(
            role_arn, region=region, session_name_prefix=session_name_prefix
        )

        def factory(tenant_id: str) -> VectorIndex:
            return S3VectorsIndex(
                lambda: vending.client_for(tenant_id, "s3vectors"),
                bucket,
                index_name_for(tenant_id),
                embedder.dimension,
                create_if_missing=False,
            )

        return cls(factory, embedder, **kwargs)

    @classmethod
    def for_local(
        cls, *, root_dir: str | Path, embedder: Embedder, **kwargs: Any
    ) -> "MultiTenantMemoryStore":
        """Embedded backend: one LocalIndex file per tenant under ``root_dir``."""
        root = Path(root_dir)
        return cls(
            lambda tenant_id: LocalIndex(root, index_name_for(tenant_id), embedder.dimension),
            embedder,
            **kwargs,
        )

    def store_for(self, tenant_id: str) -> MemoryStore:
        """The (cached) single-tenant store of ``tenant_id``."""
        tenant_id = validate_tenant_id(tenant_id)
        with self._lock:
            cached = self._stores.get(tenant_id)
            if cached is None:
                cached = MemoryStore(
                    self._index_factory(tenant_id),
                    self.embedder,
                    tenant_id=tenant_id,
                    default_min_score=self.default_min_score,
                )
                self._stores[tenant_id] = cached
        return cached

    def _for_scope(self, scope: Scope) -> MemoryStore:
        if not isinstance(scope, Scope) or scope.tenant_id is None:
            raise ValidationError("the multi-tenant store needs scope.tenant_id")
        return self.store_for(scope.tenant_id)

    def store(
        self,
        scope: Scope,
        content: str,
        *,
        conversation_id: str | None = None,
        memory_type: str = "summary",
        key: str | None = None,
    ) -> Memory:
        """Store one memory in the scope's tenant index (see MemoryStore.store)."""
        return self._for_scope(scope).store(
            scope, content, conversation_id=conversation_id, memory_type=memory_type, key=key
        )

    def retrieve(
        self, scope: Scope, query: str, *, top_k: int = 5, min_score: float | None = None
    ) -> list[Memory]:
        """Most similar visible memories of the scope's tenant (see MemoryStore.retrieve)."""
        return self._for_scope(scope).retrieve(scope, query, top_k=top_k, min_score=min_score)

    def list(self, scope: Scope) -> list[Memory]:
        """Every visible memory of the scope (see MemoryStore.list)."""
        return self._for_scope(scope).list(scope)

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete a user's (or agent's) memories in the scope's tenant (see MemoryStore.forget)."""
        return self._for_scope(scope).forget(scope, conversation_id=conversation_id)

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        """Empty the tenant's index (every memory deleted); returns how many were deleted.

        The index itself stays (see MemoryStore.forget_tenant): dropping it is offboarding,
        an operator action (``python -m scripts tenant offboard``).
        """
        if tenant_id is None:
            raise ValidationError("forget_tenant needs a tenant id")
        store = self.store_for(tenant_id)
        count = store.forget_tenant(tenant_id)
        with self._lock:
            self._stores.pop(tenant_id, None)
        return count
