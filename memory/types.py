"""Plain data types shared by the memory library: vector records, query hits, memories, scopes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

#: Metadata keys that S3 Vectors can filter on.
FILTERABLE_KEYS = ("user_id", "agent_name", "type", "stored_at_epoch", "opened")
#: Metadata keys stored with a vector but not filterable (declared at index creation).
NON_FILTERABLE_KEYS = ("content", "conversation_id")

#: The ``type`` of each unit a conversation is stored as (``memory.pipeline.units``).
SUMMARY_TYPE = "summary"
EXCERPT_TYPE = "excerpt"
STATEMENT_TYPE = "statement"
FACT_TYPE = "fact"
#: Every unit type a conversation is stored as.
UNIT_TYPES = (SUMMARY_TYPE, EXCERPT_TYPE, STATEMENT_TYPE, FACT_TYPE)


@dataclass(frozen=True)
class VectorRecord:
    """One vector with its key and metadata, as stored in an index.

    Attributes:
        key: Unique within the index.
        vector: The embedding.
        metadata: Filterable and non-filterable metadata (``FILTERABLE_KEYS``, ``NON_FILTERABLE_KEYS``).
    """

    key: str
    vector: Sequence[float]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QueryHit:
    """One query result.

    Attributes:
        key: The vector's key.
        distance: Cosine distance (0 = identical, 2 = opposite).
        metadata: The vector's metadata.
    """

    key: str
    distance: float
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scope:
    """Whose memories an operation touches.

    ``tenant_id`` is required by the multi-tenant store and must be None (or the store's
    own tenant) for the single-tenant one. ``agent_name`` None means "every agent of this
    user" (a supervisor view); otherwise the agent's own memories plus the user's shared,
    agent-less ones.

    Attributes:
        user_id: The user.
        tenant_id: The tenant (multi-tenant store), or None.
        agent_name: The agent, or None for every agent of the user.
    """

    user_id: str
    tenant_id: str | None = None
    agent_name: str | None = None


@dataclass(frozen=True)
class Memory:
    """A stored memory as returned to callers.

    Attributes:
        id: Its key in the index.
        content: The memory text.
        user_id: Whose memory it is.
        stored_at: When it was stored (UTC); None for an undated memory of
            strands-s3-vectors-memory (``memory.stores.scoping``).
        memory_type: ``summary``, ``fact``, ``note``...
        agent_name: The agent that stored it; None for a memory shared by the user's agents.
        conversation_id: The conversation it came from, if any.
        tenant_id: The tenant, if any.
        score: Cosine similarity (1 = identical) on retrieval, None when listed.
    """

    id: str
    content: str
    user_id: str
    stored_at: datetime | None
    memory_type: str = "summary"
    agent_name: str | None = None
    conversation_id: str | None = None
    tenant_id: str | None = None
    score: float | None = None  # cosine similarity (1 = identical) on retrieval, None on list
    opened: str | None = None  # the conversation's start marker (``memory.keys``), if known


@dataclass(frozen=True)
class MemoryUnit:
    """One vector of a conversation's memory: its key, type (``summary``, ``excerpt``,
    ``statement`` or ``fact``; see ``memory.pipeline.units``) and text."""

    key: str
    content: str
    memory_type: str = "summary"
