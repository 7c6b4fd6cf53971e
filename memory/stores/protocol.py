"""The memory backend interface: what the plugin, the recall tool and the app need from a store."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Sequence, runtime_checkable

from memory.types import Memory, MemoryUnit, Scope


@runtime_checkable
class MemoryBackend(Protocol):
    """What the plugin, the recall tool and the app need from a memory store."""

    def store(
        self,
        scope: Scope,
        content: str,
        *,
        conversation_id: str | None = None,
        memory_type: str = "summary",
        key: str | None = None,
    ) -> Memory:
        """Embed and store one memory (idempotent when ``key`` is given)."""

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
        """Store a conversation's units in one batch, then delete the ``replaces`` keys not among them.

        ``happened_at`` (when the conversation last changed) dates them, never later than now.
        """

    def retrieve(
        self,
        scope: Scope,
        query: str,
        *,
        top_k: int = 5,
        min_score: float | None = None,
    ) -> list[Memory]:
        """Hybrid-ranked memories for the scope, best first, one per conversation.

        ``min_score`` (cosine similarity) overrides the store's floor (the embedder's calibrated
        ``min_score`` unless set at construction).
        """

    def list(self, scope: Scope) -> list[Memory]:
        """Every memory of the scope."""

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete a user's memories (optionally one conversation's); returns how many."""

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        """Delete every memory of a tenant (its whole index); returns how many."""

    def sweep_expired(self, tenant_id: str | None = None) -> int:
        """Delete the tenant's memories older than the store's retention; returns how many."""
