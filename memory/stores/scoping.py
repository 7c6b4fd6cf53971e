"""What a store may read and delete for a scope (the agent rule), and how metadata maps to a Memory.

Agent rule. A memory stored with ``Scope.agent_name=None`` is a user-level, shared memory:
every agent of that user sees it. With ``Scope.agent_name`` set, retrieval and listing return
that agent's own memories plus the user's shared ones (``agent_name == name OR agent_name
absent``); with ``agent_name=None`` (a supervisor) they return every memory of the user,
whichever agent stored it. ``forget`` with an agent name deletes only that agent's own
memories; without one it deletes all of the user's memories.

Metadata stored per memory: ``user_id``, ``agent_name`` (absent when None), ``type``,
``stored_at_epoch`` (int seconds), ``opened`` (a conversation's start marker, absent when
unknown), and the non-filterable ``content`` and ``conversation_id``.

Memories written by strands-s3-vectors-memory (the package ``memory.compat`` replaces) have no
``stored_at_epoch``: its notes carry ``stored_at`` (``YYYYMMDD_HHMMSS``, UTC), its summaries no
date at all. Such a memory counts as stored at its ``stored_at`` (:func:`stored_epoch`); one
without a readable date shows no date (``Memory.stored_at`` None, never 1970) and, under a
retention TTL, counts as expired (:func:`is_expired`): never retrieved, and swept.

Relevance floor: one concept, the cosine similarity below which a memory is unrelated to a
query. It depends on the embedding model's score scale, so each embedder declares its
calibrated ``min_score`` (``embedder_min_score``); a store may be given another one, and a
caller may override it per query.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from memory.errors import ValidationError
from memory.types import Memory, Scope

#: The ``stored_at`` format of strands-s3-vectors-memory (UTC).
SEED_STORED_AT_FORMAT = "%Y%m%d_%H%M%S"

#: The floor of an embedder that declares none (keeps every candidate).
UNCALIBRATED_MIN_SCORE = -1.0


def embedder_min_score(embedder: object) -> float:
    """The embedder's calibrated relevance floor (``min_score`` attribute), if it declares one."""
    value = getattr(embedder, "min_score", None)
    return float(value) if isinstance(value, (int, float)) else UNCALIBRATED_MIN_SCORE


def validate_scope(scope: Scope) -> None:
    """ValidationError unless ``scope`` names a user (and, if any, a non-empty agent name)."""
    if not isinstance(scope, Scope):
        raise ValidationError("scope must be a memory.types.Scope")
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


def ownership_filter(scope: Scope) -> dict[str, Any]:
    """The memories ``forget(scope)`` deletes: the user's, or only the agent's own."""
    if scope.agent_name is None:
        return {"user_id": {"$eq": scope.user_id}}
    return {"user_id": {"$eq": scope.user_id}, "agent_name": {"$eq": scope.agent_name}}


def stored_epoch(metadata: dict[str, Any]) -> int | None:
    """When a memory was stored (epoch seconds): its ``stored_at_epoch``, else the ``stored_at``
    of strands-s3-vectors-memory (``YYYYMMDD_HHMMSS`` UTC, or ISO 8601), else None (undated)."""
    epoch = metadata.get("stored_at_epoch")
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool):
        return int(epoch)
    text = metadata.get("stored_at")
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.strptime(text, SEED_STORED_AT_FORMAT)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
    return int((stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp())


def retention_filter(cutoff: int, *, expired: bool) -> dict[str, Any]:
    """The index filter of the memories that may be retained (``expired=False``) or expired at
    ``cutoff``: those dated on the right side of it plus the ones without ``stored_at_epoch``,
    which :func:`is_expired` then decides."""
    dated = {"stored_at_epoch": {"$lt" if expired else "$gte": cutoff}}
    return {"$or": [dated, {"stored_at_epoch": {"$exists": False}}]}


def is_expired(metadata: dict[str, Any], cutoff: int) -> bool:
    """True if the memory was stored before ``cutoff`` or has no readable date."""
    epoch = stored_epoch(metadata)
    return epoch is None or epoch < cutoff


def memory_from_metadata(
    key: str, metadata: dict[str, Any], tenant_id: str | None, score: float | None
) -> Memory:
    """The Memory a stored vector's key and metadata describe."""
    epoch = stored_epoch(metadata)
    return Memory(
        id=key,
        content=str(metadata.get("content", "")),
        user_id=str(metadata.get("user_id", "")),
        stored_at=None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc),
        memory_type=str(metadata.get("type", "summary")),
        agent_name=metadata.get("agent_name"),
        conversation_id=metadata.get("conversation_id"),
        tenant_id=tenant_id,
        score=score,
        opened=metadata.get("opened"),
    )
