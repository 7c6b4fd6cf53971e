"""Memory keys: deterministic for conversation summaries (idempotent writes), random otherwise."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timezone


def summary_key(
    tenant_id: str | None,
    user_id: str,
    agent_name: str | None,
    conversation_id: str,
    opened: str | None = None,
) -> str:
    """The key of a conversation's summary: ``sum-`` + sha256 over length-prefixed parts.

    ``opened`` is the conversation's start marker (``new_conversation_marker``): two
    conversations held under the same conversation id (a session id reused after a restart
    or after its end) get different keys, while replaying one conversation keeps its key.
    None gives the key of entries written before markers existed (the four parts only).
    Length prefixes make the encoding unambiguous (``("a-b", "c")`` and ``("a", "b-c")``
    differ) and None differs from the empty string.
    """
    parts = (tenant_id, user_id, agent_name, conversation_id) + (() if opened is None else (opened,))
    return "sum-" + _digest(parts)


def fact_key(tenant_id: str | None, user_id: str, agent_name: str | None, content: str) -> str:
    """The key of an extracted fact: ``fact-`` + sha256 over the owner and the whitespace-normalised
    text, so writing the same fact again (extraction is at-least-once) overwrites it."""
    return "fact-" + _digest((tenant_id, user_id, agent_name, " ".join(content.split())))


def _digest(parts: tuple[str | None, ...]) -> str:
    """sha256 hex over length-prefixed parts (None differs from the empty string)."""
    digest = hashlib.sha256()
    for part in parts:
        encoded = b"\x00" if part is None else b"\x01" + part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()


def new_conversation_marker(at: datetime | None = None) -> str:
    """A unique conversation start marker: UTC ISO timestamp (``at``, default now) + ``~`` + 8
    random hex digits; every marker of a four-digit year has the same length."""
    opened_at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
    return f"{opened_at}~{secrets.token_hex(4)}"


def random_key() -> str:
    """A fresh random memory key (``mem-`` + 32 hex digits)."""
    return "mem-" + uuid.uuid4().hex
