"""Memory keys: deterministic for conversation summaries (idempotent writes), random otherwise."""

from __future__ import annotations

import hashlib
import uuid


def summary_key(
    tenant_id: str | None, user_id: str, agent_name: str | None, conversation_id: str
) -> str:
    """The key of a conversation's summary: ``sum-`` + sha256 over length-prefixed parts.

    Length prefixes make the encoding unambiguous (``("a-b", "c")`` and ``("a", "b-c")``
    differ) and None differs from the empty string.
    """
    digest = hashlib.sha256()
    for part in (tenant_id, user_id, agent_name, conversation_id):
        encoded = b"\x00" if part is None else b"\x01" + part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return "sum-" + digest.hexdigest()


def random_key() -> str:
    """A fresh random memory key (``mem-`` + 32 hex digits)."""
    return "mem-" + uuid.uuid4().hex
