"""SingleTenantStore: the memories of one tenant in one vector index (see ``memory.stores.scoping``)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from memory import telemetry
from memory.embedders.protocol import Embedder, check_dimensions
from memory.errors import ValidationError
from memory.index.filters import compile_filter
from memory.index.local import LocalIndex
from memory.index.protocol import VectorIndex
from memory.index.s3vectors import S3VectorsIndex
from memory.keys import random_key
from memory.stores.hybrid import DENSE_CANDIDATES, TokenCache, hybrid_rank
from memory.stores.scoping import (
    embedder_min_score,
    is_expired,
    memory_from_metadata,
    ownership_filter,
    retention_filter,
    validate_scope,
    visibility_filter,
)
from memory.tenants import validate_tenant_id
from memory.types import Memory, MemoryUnit, QueryHit, Scope, VectorRecord

logger = logging.getLogger(__name__)

#: ``for_local``'s index without an ``index_name``. A tenant's index is ``memory-<tenant>`` with
#: a tenant id of at least one character (``memory.tenants.index_name_for``), so no tenant's index
#: is called ``memory``: a multi-tenant store sharing the directory never opens this file.
DEFAULT_LOCAL_INDEX = "memory"
#: The earlier default, which is also tenant ``default``'s index name; read while it is the only one.
LEGACY_LOCAL_INDEX = "memory-default"


class SingleTenantStore:
    """Memories of one tenant in one vector index, filtered by user and agent (module docstring).

    ``tenant_id`` (optional) is the tenant this store serves: a Scope naming another tenant is
    rejected. The index is ensured lazily, once (again after :meth:`forget_tenant`).
    ``default_min_score`` None takes the embedder's calibrated floor (``embedder_min_score``);
    ``clock`` gives ``stored_at`` (epoch seconds). ``ttl_seconds`` (optional retention): memories
    stored longer ago are never retrieved, and :meth:`sweep_expired` deletes them (S3 Vectors has
    no TTL of its own).
    """

    def __init__(
        self,
        index: VectorIndex,
        embedder: Embedder,
        *,
        tenant_id: str | None = None,
        default_min_score: float | None = None,
        ttl_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        token_cache: TokenCache | None = None,
    ) -> None:
        """Create the store (the index is ensured on first use).

        Args:
            index: The vector index holding the tenant's memories.
            embedder: Embeds memories and queries; its dimension must match the index.
            tenant_id: The tenant served (a Scope naming another is refused); None: no check.
            default_min_score: Cosine-similarity floor when ``retrieve`` gets none (None: the
                embedder's calibrated floor).
            ttl_seconds: Retention in seconds (None: memories are kept forever).
            clock: Epoch seconds, for ``stored_at`` and retention.
            token_cache: Tokenised memory texts for ranking (a ``MultiTenantStore`` passes its
                shared cache scoped to the tenant); None: a cache of this store's own.

        Raises:
            ConfigurationError: Embedder and index dimensions differ.
            InvalidTenantId: An invalid ``tenant_id``.
        """
        check_dimensions(embedder, index.dimension)
        self.ttl_seconds = ttl_seconds
        self.index = index
        self.embedder = embedder
        self.tenant_id = validate_tenant_id(tenant_id) if tenant_id is not None else None
        self.default_min_score = embedder_min_score(embedder) if default_min_score is None else default_min_score
        self.clock = clock
        self._tokens = token_cache if token_cache is not None else TokenCache()
        self._ensured = False
        self._ensure_lock = threading.Lock()

    @classmethod
    def for_local(
        cls, *, root_dir: str | Path, embedder: Embedder, index_name: str | None = None, **kwargs: Any
    ) -> "SingleTenantStore":
        """A store on a LocalIndex ``<root_dir>/<index_name>.sqlite3``.

        Without ``index_name``: :data:`DEFAULT_LOCAL_INDEX`, or, in a directory holding only the
        earlier default's file (:data:`LEGACY_LOCAL_INDEX`), that one, so that an upgrade loses
        nothing. Its records do not say whether a single-tenant store or tenant ``default`` of a
        multi-tenant store wrote them, so it is not renamed here: a warning says how to.
        """
        if index_name is None:
            index_name = _default_local_index(Path(root_dir))
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

    def _matching(self, flt: dict[str, Any]) -> Iterator[VectorRecord]:
        """The records ``flt`` matches, as the index pages them (callers keep what they need)."""
        self.ensure()
        predicate = compile_filter(flt)
        return (r for r in self.index.list() if predicate(r.metadata))

    # -- SingleTenantStoreProtocol ---------------------------------------------------------------

    def _metadata(
        self,
        scope: Scope,
        memory_type: str,
        content: str,
        conversation_id: str | None,
        opened: str | None,
        happened_at: datetime | None = None,
    ) -> dict[str, Any]:
        now = self.clock()
        metadata: dict[str, Any] = {
            "user_id": scope.user_id,
            "type": memory_type,
            "stored_at_epoch": int(now if happened_at is None else min(now, happened_at.timestamp())),
            "content": content,
        }
        if scope.agent_name is not None:
            metadata["agent_name"] = scope.agent_name
        if conversation_id is not None:
            metadata["conversation_id"] = conversation_id
        if opened is not None:
            metadata["opened"] = opened
        return metadata

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
        metadata = self._metadata(scope, memory_type, content, conversation_id, None)
        memory_key = key or random_key()
        self.ensure()
        self.index.put([VectorRecord(memory_key, vector, metadata)])
        logger.debug("stored memory %s (%d chars)", memory_key, len(content))
        return memory_from_metadata(memory_key, metadata, self.tenant_id, None)

    @telemetry.traced("memory.store_units", lambda self, scope, units, **k: {
        **telemetry.scope_attributes(scope), "memory.units": len(units)})
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
        """Embed and store a conversation's units in one put (more for wide vectors, see
        ``S3VectorsIndex.put``), then delete stale ``replaces`` keys.

        Units without embeddable words are skipped (and count as stale). Stale keys are looked up
        first (GetVectors, reads) and only those that exist are deleted. The put comes first:
        a crash in between leaves extra units that the replay of the same conversation removes,
        and a put failing after some batches leaves units the replay overwrites (same keys).
        ``happened_at`` (when the conversation last changed) dates the units instead of the clock,
        never later than it: a late store keeps the conversation's date, and retention counts
        from it.
        """
        self._check(scope)
        if not isinstance(conversation_id, str) or not conversation_id:
            raise ValidationError("conversation_id must be a non-empty string")
        units = [u for u in units if isinstance(u.content, str) and u.content.strip()]
        texts = list(dict.fromkeys(u.content for u in units))  # each distinct text embedded once
        embedded = dict(zip(texts, self.embedder.embed(texts, "index"))) if texts else {}
        vectors = [embedded[u.content] for u in units]
        records = [
            VectorRecord(u.key, v, self._metadata(scope, u.memory_type, u.content, conversation_id, opened, happened_at))
            for u, v in zip(units, vectors)
            if any(v)
        ]
        self.ensure()
        if records:
            self.index.put(records)
        stored = {r.key for r in records}
        candidates = [k for k in dict.fromkeys(replaces) if k not in stored]
        # only keys that exist: deleting all of them would spend S3 Vectors' per-index write quota
        # (2,500 vectors inserted and deleted a second) on keys a conversation never had
        stale = [r.key for r in self.index.get(candidates)] if candidates else []
        if stale:
            self.index.delete(stale)
        logger.debug("stored %d memory units of a conversation", len(records))
        return [memory_from_metadata(r.key, r.metadata, self.tenant_id, None) for r in records]

    def retrieve(
        self, scope: Scope, query: str, *, top_k: int = 5, min_score: float | None = None
    ) -> list[Memory]:
        """The ``top_k`` best visible memories, one per conversation (``memory.stores.hybrid``).

        Dense over-fetch of ``DENSE_CANDIDATES`` units, candidates below the floor (``min_score``,
        else the store's default) dropped, BM25 and cosine fused as scores. ``Memory.score`` is
        the chosen unit's cosine similarity.
        """
        self._check(scope)
        if not isinstance(query, str) or not query.strip():
            return []
        threshold = self.default_min_score if min_score is None else min_score
        (vector,) = self.embedder.embed([query], "retrieval")
        if not any(vector):
            return []
        self.ensure()
        flt = visibility_filter(scope)
        cutoff = None if self.ttl_seconds is None else self._expiry_cutoff()
        if cutoff is not None:
            flt = {"$and": [flt, retention_filter(cutoff, expired=False)]}
        hits: list[QueryHit] = self.index.query(vector, max(top_k, DENSE_CANDIDATES), flt)
        if cutoff is not None:  # the undated ones the filter let through (scoping.is_expired)
            hits = [hit for hit in hits if not is_expired(hit.metadata, cutoff)]
        ranked = hybrid_rank(query, hits, top_k=top_k, min_similarity=threshold, cache=self._tokens)
        return [memory_from_metadata(r.hit.key, r.hit.metadata, self.tenant_id, r.similarity) for r in ranked]

    def list(self, scope: Scope) -> list[Memory]:
        """Every memory the scope may read, newest first."""
        self._check(scope)
        records = self._matching(visibility_filter(scope))
        memories = [memory_from_metadata(r.key, r.metadata, self.tenant_id, None) for r in records]
        return sorted(memories, key=lambda m: (m.stored_at is not None, m.stored_at or 0, m.id), reverse=True)

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete the user's memories (only the agent's own if ``scope.agent_name`` is set),
        optionally only those of ``conversation_id``; returns how many were deleted."""
        self._check(scope)
        keys = [
            r.key
            for r in self._matching(ownership_filter(scope))
            if conversation_id is None or r.metadata.get("conversation_id") == conversation_id
        ]
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
        keys = list(self.index.keys())  # keys only: no metadata is needed to delete them all
        if keys:
            self.index.delete(keys)
        logger.info("forgot all %d memories of index %s", len(keys), self.index.name)
        return len(keys)

    def sweep_expired(self, tenant_id: str | None = None) -> int:
        """Delete the memories older than ``ttl_seconds`` (none without a TTL); returns how many.

        Pages through the index by metadata (``stored_at_epoch``), like ``forget``; an undated
        memory of strands-s3-vectors-memory counts as expired (``scoping.is_expired``).
        """
        if tenant_id is not None and tenant_id != self.tenant_id:
            raise ValidationError("tenant_id does not match this store's tenant")
        if self.ttl_seconds is None:
            return 0
        cutoff = self._expiry_cutoff()
        keys = [r.key for r in self._matching(retention_filter(cutoff, expired=True)) if is_expired(r.metadata, cutoff)]
        if keys:
            self.index.delete(keys)
        logger.info("retention: deleted %d expired memories of index %s", len(keys), self.index.name)
        return len(keys)

    def _expiry_cutoff(self) -> int:
        assert self.ttl_seconds is not None
        return int(self.clock() - self.ttl_seconds)


def _default_local_index(root_dir: Path) -> str:
    legacy = root_dir / f"{LEGACY_LOCAL_INDEX}.sqlite3"
    if (root_dir / f"{DEFAULT_LOCAL_INDEX}.sqlite3").exists() or not legacy.exists():
        return DEFAULT_LOCAL_INDEX
    logger.warning(
        "reading the earlier default index %s, which is also tenant 'default''s index name: a "
        "multi-tenant store in this directory would share it; unless tenant 'default' wrote it, "
        "rename it to %s.sqlite3 (or pass index_name=%r)",
        legacy, DEFAULT_LOCAL_INDEX, LEGACY_LOCAL_INDEX,
    )
    return LEGACY_LOCAL_INDEX
