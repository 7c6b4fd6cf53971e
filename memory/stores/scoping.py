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

import functools
import json
from datetime import datetime, timezone
from typing import Any

from memory.errors import IdentityTooLong, ValidationError
from memory.index.limits import MAX_FILTERABLE_METADATA_BYTES, filterable_metadata_bytes
from memory.keys import new_conversation_marker
from memory.types import UNIT_TYPES, Memory, Scope

#: The ``stored_at`` format of strands-s3-vectors-memory (UTC).
SEED_STORED_AT_FORMAT = "%Y%m%d_%H%M%S"

#: The floor of an embedder that declares none (keeps every candidate).
UNCALIBRATED_MIN_SCORE = -1.0

#: The latest date a memory can carry (four-digit years: ``stored_at_epoch``, start markers).
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


def embedder_min_score(embedder: object) -> float:
    """The embedder's calibrated relevance floor (``min_score`` attribute), if it declares one."""
    value = getattr(embedder, "min_score", None)
    return float(value) if isinstance(value, (int, float)) else UNCALIBRATED_MIN_SCORE


def validate_scope(scope: Scope) -> None:
    """ValidationError unless ``scope`` names a user (and, if any, a non-empty agent name) that
    can be stored (``IdentityTooLong``: :func:`check_storable_identity`)."""
    if not isinstance(scope, Scope):
        raise ValidationError("scope must be a memory.types.Scope")
    if not isinstance(scope.user_id, str) or not scope.user_id:
        raise ValidationError("scope.user_id must be a non-empty string")
    if scope.agent_name is not None and (not isinstance(scope.agent_name, str) or not scope.agent_name):
        raise ValidationError("scope.agent_name must be None or a non-empty string")
    check_storable_identity(scope.user_id, scope.agent_name, user_arg="scope.user_id", agent_arg="scope.agent_name")


def _largest_filterable(user_id: str, agent_name: str | None) -> dict[str, Any]:
    """The filterable metadata of the largest unit ``user_id`` and ``agent_name`` can be stored
    with: the longest unit type, the latest ``stored_at_epoch`` and start marker ``opened``."""
    metadata: dict[str, Any] = {
        "user_id": user_id,
        "type": max(UNIT_TYPES, key=len),
        "stored_at_epoch": int(_LATEST.timestamp()),
        "opened": new_conversation_marker(_LATEST),
    }
    if agent_name is not None:
        metadata["agent_name"] = agent_name
    return metadata


@functools.lru_cache(maxsize=256)
def _filterable_bytes_without_user(agent_name: str | None) -> int:
    """The size of the largest unit's filterable metadata with an empty user id (checked on every
    turn and store call, for a few agent names)."""
    return filterable_metadata_bytes(_largest_filterable("", agent_name))


def check_storable_identity(
    user_id: str, agent_name: str | None, *, user_arg: str = "user_id", agent_arg: str = "agent_name"
) -> None:
    """Refuse a user id or agent name too long to be stored.

    Every memory carries both as filterable metadata, which S3 Vectors (and ``LocalIndex``)
    limits to ``MAX_FILTERABLE_METADATA_BYTES`` together with the unit's ``type``,
    ``stored_at_epoch`` and start marker: an identity that leaves no room for the largest of
    those could be answered and accepted, then never stored (its summary dead-lettered).

    Args:
        user_id: The user id (its JSON-encoded UTF-8 size counts).
        agent_name: The agent name memories are stored under, or None.
        user_arg: How the error names the user id (the caller's argument).
        agent_arg: How the error names the agent name.

    Raises:
        IdentityTooLong: The largest unit's filterable metadata would exceed the limit; it names
            ``agent_arg`` when the agent name alone leaves no room for a user id.
    """
    room = MAX_FILTERABLE_METADATA_BYTES - _filterable_bytes_without_user(agent_name)
    # what the user id adds to that metadata: its JSON string without the quotes already counted
    if len(json.dumps(user_id, ensure_ascii=False).encode("utf-8")) - 2 <= room:
        return
    if room <= 0:
        raise IdentityTooLong(f"{agent_arg} is too long: memories are stored with at most "
                              f"{MAX_FILTERABLE_METADATA_BYTES} bytes of filterable metadata")
    raise IdentityTooLong(f"{user_arg} is too long: at most {room} bytes (UTF-8, JSON-escaped) with this agent name")


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


def _stored_datetime(epoch: int | None) -> datetime | None:
    """``epoch`` as a UTC datetime; None (undated) for one no datetime holds (another tool's or a
    corrupted value), which would otherwise fail every read of its user's memories."""
    if epoch is None:
        return None
    try:
        return datetime.fromtimestamp(epoch, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


def memory_from_metadata(
    key: str, metadata: dict[str, Any], tenant_id: str | None, score: float | None
) -> Memory:
    """The Memory a stored vector's key and metadata describe."""
    return Memory(
        id=key,
        content=str(metadata.get("content", "")),
        user_id=str(metadata.get("user_id", "")),
        stored_at=_stored_datetime(stored_epoch(metadata)),
        memory_type=str(metadata.get("type", "summary")),
        agent_name=metadata.get("agent_name"),
        conversation_id=metadata.get("conversation_id"),
        tenant_id=tenant_id,
        score=score,
        opened=metadata.get("opened"),
    )
