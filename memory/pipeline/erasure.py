"""Erasure that holds: a durable marker first, then the outbox, then the memories, then a marker.

``erase`` (what ``forget`` runs) writes an ``ErasureMarker`` to the outbox backend, deletes
the matching outbox entries (open checkpoints, closed entries and dead letters), then deletes
the matching memories, every memory unit of every matching conversation, found by metadata
(``user_id``, ``conversation_id``), never by assuming one key per conversation, and writes a
second marker for the conversations that started (and may have read those memories) meanwhile
(a conversation starts before its first retrieval, ``memory.plugin.plugin``). The summary
pipeline checks the markers before every store and again right after it (deleting what it
just stored if a marker appeared meanwhile), and the checkpoint writer drops live transcripts
they cover, so a conversation that started before an erasure is never stored after it by any
process, replay or shutdown path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from memory.pipeline.outbox import ErasureMarker, Outbox, OutboxEntry
from memory.stores.protocol import MemoryBackend
from memory.types import Scope

logger = logging.getLogger(__name__)

#: How long ``scripts forget`` waits before its last outbox sweep: the markers a checkpoint
#: writer trusts (``SummaryPipeline``'s default ``erasure_refresh_seconds``, 5 s) plus a write.
ERASURE_SETTLE_SECONDS = 7.0


@dataclass(frozen=True)
class ErasureResult:
    """What one ``erase`` wrote and removed: ``markers`` are the erasure markers it wrote, in order."""

    markers: tuple[ErasureMarker, ...]
    outbox_entries: int
    dead_letters: int
    memories: int


def covering(markers: Sequence[ErasureMarker], entry: OutboxEntry) -> ErasureMarker | None:
    """The first marker that erases ``entry``'s conversation, None if none does."""
    return next((m for m in markers if m.covers(entry)), None)


def erase(
    outbox: Outbox,
    store: MemoryBackend | None,
    *,
    tenant_id: str | None,
    user_id: str | None = None,
    conversation_id: str | None = None,
    settle_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ErasureResult:
    """Erase a tenant (``user_id`` None), a user, or one of a user's conversations.

    Order matters: the marker is durable before anything is deleted, so a summary racing
    this call either sees the marker or is deleted by the memory deletion that follows it.
    A second marker follows the deletion, so a conversation that started meanwhile (and may
    have been given the memories being deleted) is covered too. ``store`` None erases only the
    outbox side (markers, entries, dead letters).

    A running app's checkpoint writer trusts the markers it read for a few seconds
    (``SummaryPipeline.erasure_refresh_seconds``), so it may write a live conversation's
    checkpoint once more after the entries were deleted. With ``settle_seconds`` (what
    ``scripts forget`` passes: ``ERASURE_SETTLE_SECONDS``), the outbox is swept once more after
    that long, so ``forget`` returns with no covered entry left that such a write had put back.
    """
    if conversation_id is not None and user_id is None:
        raise ValueError("erasing a conversation needs its user")
    marker = ErasureMarker(tenant_id=tenant_id, user_id=user_id, conversation_id=conversation_id)
    outbox.add_erasure(marker)
    entries = _remove_covered(outbox, marker, tenant_id)
    letters = [d for d in outbox.dead_letters(tenant_id) if marker.covers(d.entry)]
    for letter in letters:
        outbox.purge(letter.entry.entry_id, letter.entry.tenant_id)
    memories = 0
    latest = marker
    if store is not None:
        if user_id is None:
            memories = store.forget_tenant(tenant_id)
        else:
            memories = store.forget(Scope(user_id=user_id, tenant_id=tenant_id), conversation_id=conversation_id)
        # A conversation that started after the first marker may have read the memories before
        # they were deleted (and repeat them in its answers): this marker covers it too.
        latest = ErasureMarker(tenant_id=tenant_id, user_id=user_id, conversation_id=conversation_id)
        outbox.add_erasure(latest)
    if settle_seconds > 0:
        sleep(settle_seconds)
        entries += _remove_covered(outbox, latest, tenant_id)
    markers = (marker,) if latest is marker else (marker, latest)
    logger.info(
        "erased: %d outbox entries, %d dead letters, %d memories (markers %s)",
        len(entries),
        len(letters),
        memories,
        ", ".join(m.marker_id for m in markers),
    )
    return ErasureResult(markers, len(entries), len(letters), memories)


def _remove_covered(outbox: Outbox, marker: ErasureMarker, tenant_id: str | None) -> list[OutboxEntry]:
    """Remove the tenant's pending entries ``marker`` covers; returns them."""
    covered = [e for e in outbox.pending(tenant_id) if marker.covers(e)]
    for entry in covered:
        outbox.remove(entry.entry_id, entry.tenant_id)
    return covered
