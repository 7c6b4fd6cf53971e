"""MultiTenantStore: one index per tenant (``memory-<tenantId>``), TVM credentials on S3 Vectors."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from cachetools import LRUCache

from memory.embedders.protocol import Embedder
from memory.errors import ConfigurationError, ValidationError
from memory.index.limits import validate_bucket_name
from memory.index.local import LocalIndex
from memory.index.protocol import VectorIndex
from memory.index.s3vectors import S3VectorsIndex
from memory.stores.hybrid import TokenCache
from memory.stores.single_tenant import SingleTenantStore
from memory.stores.tvm import TokenVendingMachine
from memory.tenants import index_name_for, validate_tenant_id
from memory.types import Memory, MemoryUnit, Scope

logger = logging.getLogger(__name__)


class MultiTenantStore:
    """One index per tenant (``memory-<tenantId>``); ``Scope.tenant_id`` is required.

    ``index_factory(tenant_id)`` builds a tenant's index; per-tenant stores are cached (LRU,
    ``max_cached_tenants``) and each index is ensured once. The tenants' stores share one
    ranking cache of tokenised texts (``token_cache_size`` entries in all, keyed by tenant), so
    memory does not grow with the number of cached tenants. ``ttl_seconds``: retention (see
    SingleTenantStore). Tenant ids are validated before
    they become index names.
    """

    def __init__(
        self,
        index_factory: Callable[[str], VectorIndex],
        embedder: Embedder,
        *,
        default_min_score: float | None = None,
        max_cached_tenants: int = 1024,
        ttl_seconds: float | None = None,
        token_cache_size: int = 20_000,
    ) -> None:
        """Create the store (indexes are opened per tenant on first use).

        Args:
            index_factory: Builds a tenant's index from its (validated) tenant id.
            embedder: Embeds memories and queries.
            default_min_score: Cosine-similarity floor when ``retrieve`` gets none.
            max_cached_tenants: How many tenants' stores stay cached (LRU).
            ttl_seconds: Retention in seconds (None: memories are kept forever).
            token_cache_size: Tokenised memory texts kept for ranking, all tenants together.
        """
        self._index_factory = index_factory
        self.embedder = embedder
        self.default_min_score = default_min_score
        self.ttl_seconds = ttl_seconds
        self._stores: LRUCache[str, SingleTenantStore] = LRUCache(maxsize=max_cached_tenants)
        self._tokens = TokenCache(token_cache_size)
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
    ) -> "MultiTenantStore":
        """S3 Vectors backend; every call for a tenant uses that tenant's TVM credentials."""
        if not role_arn:
            raise ConfigurationError(
                "MultiTenantStore on S3 Vectors needs the TVM role ARN (tenant isolation); "
                "use MultiTenantStore.for_local for the embedded backend"
            )
        if not bucket:
            raise ConfigurationError("MultiTenantStore on S3 Vectors needs a vector bucket")
        validate_bucket_name(bucket)  # tenant indexes are opened later, at each tenant's first use
        vending = tvm or TokenVendingMachine(
            role_arn, region_name=region, session_name_prefix=session_name_prefix
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
    ) -> "MultiTenantStore":
        """Embedded backend: one LocalIndex file per tenant under ``root_dir``."""
        root = Path(root_dir)
        return cls(
            lambda tenant_id: LocalIndex(root, index_name_for(tenant_id), embedder.dimension),
            embedder,
            **kwargs,
        )

    def store_for(self, tenant_id: str) -> SingleTenantStore:
        """The (cached) single-tenant store of ``tenant_id``."""
        tenant_id = validate_tenant_id(tenant_id)
        with self._lock:
            cached = self._stores.get(tenant_id)
            if cached is None:
                cached = SingleTenantStore(
                    self._index_factory(tenant_id),
                    self.embedder,
                    tenant_id=tenant_id,
                    default_min_score=self.default_min_score,
                    ttl_seconds=self.ttl_seconds,
                    token_cache=self._tokens.scoped(tenant_id),
                )
                self._stores[tenant_id] = cached
        return cached

    def _for_scope(self, scope: Scope) -> SingleTenantStore:
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
        """Store one memory in the scope's tenant index (see SingleTenantStore.store)."""
        return self._for_scope(scope).store(
            scope, content, conversation_id=conversation_id, memory_type=memory_type, key=key
        )

    def store_units(
        self,
        scope: Scope,
        units: Sequence[MemoryUnit],
        *,
        conversation_id: str,
        opened: str | None = None,
        replaces: Sequence[str] = (),
        happened_at: datetime | None = None,
    ) -> list[Memory]:
        """Store a conversation's units in the scope's tenant index (see SingleTenantStore.store_units)."""
        return self._for_scope(scope).store_units(
            scope, units, conversation_id=conversation_id, opened=opened, replaces=replaces, happened_at=happened_at
        )

    def retrieve(
        self, scope: Scope, query: str, *, top_k: int = 5, min_score: float | None = None
    ) -> list[Memory]:
        """Best visible memories of the scope's tenant (see SingleTenantStore.retrieve)."""
        return self._for_scope(scope).retrieve(scope, query, top_k=top_k, min_score=min_score)

    def list(self, scope: Scope) -> list[Memory]:
        """Every visible memory of the scope (see SingleTenantStore.list)."""
        return self._for_scope(scope).list(scope)

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete a user's (or agent's) memories in the scope's tenant (see SingleTenantStore.forget)."""
        return self._for_scope(scope).forget(scope, conversation_id=conversation_id)

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        """Empty the tenant's index (every memory deleted); returns how many were deleted.

        The index itself stays (see SingleTenantStore.forget_tenant): dropping it is offboarding,
        an operator action (``python -m scripts tenant offboard``).
        """
        if tenant_id is None:
            raise ValidationError("forget_tenant needs a tenant id")
        store = self.store_for(tenant_id)
        count = store.forget_tenant(tenant_id)
        with self._lock:
            self._stores.pop(tenant_id, None)
        return count

    def cached_tenants(self) -> list[str]:
        """The tenants whose store is cached: those this process served recently (LRU)."""
        with self._lock:
            return list(self._stores.keys())

    def sweep_expired(self, tenant_id: str | None = None) -> int:
        """Delete the tenant's memories older than ``ttl_seconds``; returns how many."""
        if tenant_id is None:
            raise ValidationError("sweep_expired needs a tenant id")
        return self.store_for(tenant_id).sweep_expired(tenant_id)
