"""The outbox: conversations waiting to be summarized and stored, claims, dead letters and
erasure markers, behind one protocol (``Outbox``) with two backends: a local directory
(``memory.pipeline.outbox_local.LocalOutbox``, dev and tests) and Amazon S3
(``memory.pipeline.outbox_s3.S3Outbox``, one prefix per tenant, what AgentCore needs because a
microVM's disk is discarded with its session).

Once ``put`` returns, the entry survives the process (and, with S3, the machine). An entry's id
is its summary's vector key, ``memory.keys.summary_key`` (tenant, user, agent, conversation id
and the conversation's start marker ``opened``), so ending the same conversation twice replaces
one entry instead of adding a second, while a new conversation under a reused conversation id
gets its own entry. The key is also stored in the entry (``"key"``); an entry read back keeps the
key it was filed under (its id, for entries written before ``"key"`` existed), never a
recomputed one, so a change of the key format cannot orphan pending entries. A document whose
stored key disagrees with its id is reported and left in place, like an unreadable one
(``read_entry``).

An entry is either *closed* (the conversation ended: summarize it) or *open* (a per-turn
checkpoint of a live conversation, overwritten by the next turn and finally by the closed
entry). Open entries left behind by a dead process are closed by the next start
(``SummaryPipeline.replay_pending``).

*Claims* make one process at a time work on an entry (the local backend: an ``flock`` that the
kernel drops when the process dies; S3: a lease object created with ``If-None-Match: *`` and
taken over, once expired, with ``If-Match``). *Dead letters* are entries whose summary kept
failing, kept with the reason for ``python -m scripts outbox list|retry|purge``. *Erasure
markers* (``memory.pipeline.erasure``) record a ``forget``; the pipeline checks them before
every store. Each backend files a marker in a folder of its scope (``erasure_folder``: one per
erased user, one for tenant-wide erasures), so checking one user's conversation reads that
user's markers and the tenant-wide ones, not every marker the tenant ever wrote: a fresh
process (every AgentCore session is one) would otherwise fetch them all before its first store.
Markers written flat under ``erasures/`` by earlier versions are still read, for every user.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
import logging
from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

from memory.keys import summary_key
from memory.pipeline.summarizer import Turn

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def parse_or_none(parse: Callable[[Any], T], data: Any, name: str) -> T | None:
    """``parse(data)``, or None (logged, without content) when the stored document is malformed."""
    try:
        return parse(data)
    except (ValueError, KeyError, TypeError):
        logger.error("outbox document %s is unreadable; leaving it in place", name.rsplit("/", 1)[-1])
        return None


def parse_time(text: str) -> datetime:
    """An ISO timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class OutboxEntry:
    """A conversation: whose it is, when it was opened and its full text transcript so far.

    ``opened`` is the conversation's start marker (``memory.keys.new_conversation_marker``);
    None only in entries written before markers existed. ``open`` marks a checkpoint of a
    conversation still going on (False once it ended, and in entries written before
    checkpoints existed).

    Attributes:
        tenant_id: The tenant, or None (single-tenant store).
        user_id: The user.
        agent_name: The agent that held the conversation.
        conversation_id: The conversation (AgentCore session) id.
        transcript: Its text turns so far.
        created_at: When this version of the entry was made (ISO 8601; a checkpoint's age tells
            whether its process is still alive).
        attempts: Failed summary attempts so far.
        opened: The conversation's start marker (part of the summary key).
        open: True while the conversation goes on (a checkpoint).
    """

    tenant_id: str | None
    user_id: str
    agent_name: str
    conversation_id: str
    transcript: list[Turn]
    created_at: str = field(default_factory=_now)
    attempts: int = 0
    opened: str | None = None
    open: bool = False
    stored_key: str | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """The vector key of this conversation's summary: the one it was filed under, if read
        back from the outbox, else computed (``memory.keys.summary_key``)."""
        if self.stored_key is not None:
            return self.stored_key
        return summary_key(self.tenant_id, self.user_id, self.agent_name, self.conversation_id, self.opened)

    @property
    def entry_id(self) -> str:
        """The outbox id: the summary key itself (``sum-`` + hex digits, file-name safe)."""
        return self.key

    @property
    def started_at(self) -> datetime:
        """When the conversation started (its start marker's time; ``created_at`` without one)."""
        return parse_time((self.opened or self.created_at).split("~", 1)[0])

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the entry, its summary key included (``"key"``)."""
        data = dataclasses.asdict(self)
        del data["stored_key"]
        return {**data, "key": self.key}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OutboxEntry":
        """Rebuild an entry from ``to_json`` output (ValueError if ``created_at`` is malformed)."""
        transcript = [Turn(role=str(t["role"]), text=str(t["text"])) for t in data["transcript"]]
        entry = cls(
            tenant_id=data.get("tenant_id"),
            user_id=str(data["user_id"]),
            agent_name=str(data["agent_name"]),
            conversation_id=str(data["conversation_id"]),
            transcript=transcript,
            created_at=str(data["created_at"]),
            attempts=int(data.get("attempts", 0)),
            opened=None if data.get("opened") is None else str(data["opened"]),
            open=data.get("open") is True,
            stored_key=None if data.get("key") is None else str(data["key"]),
        )
        parse_time(entry.created_at)  # the replay compares it with the clock
        return entry



def read_entry(data: Any, entry_id: str) -> OutboxEntry | None:
    """The entry a stored document filed under ``entry_id`` holds, keeping the key it was filed
    under; None (logged, without content) when it is unreadable or names another key."""
    entry = parse_or_none(OutboxEntry.from_json, data, entry_id)
    if entry is None:
        return None
    if entry.stored_key is None:  # written before entries stored their key: the id is the key
        return dataclasses.replace(entry, stored_key=entry_id)
    if entry.stored_key != entry_id:
        logger.error("outbox entry %s names another key; leaving it in place", entry_id)
        return None
    return entry

@dataclass(frozen=True)
class DeadLetter:
    """An entry whose summary kept failing, why, and when it was moved aside.

    Attributes:
        entry: The conversation, as it was pending.
        reason: The error type of the last failure (e.g. ``AccessDenied``, ``NotFound``); for a
            ``ConfigurationError`` followed by its message (``memory.errors.error_reason``).
        dead_at: When it was dead-lettered (ISO 8601).
    """

    entry: OutboxEntry
    reason: str
    dead_at: str = field(default_factory=_now)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {"entry": self.entry.to_json(), "reason": self.reason, "dead_at": self.dead_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "DeadLetter":
        """Rebuild from ``to_json`` output."""
        return cls(OutboxEntry.from_json(data["entry"]), str(data["reason"]), str(data["dead_at"]))


def expired_dead_letters(outbox: "Outbox", tenant_id: str | None, cutoff: datetime) -> list[DeadLetter]:
    """The dead letters (of ``tenant_id``) whose conversation last changed before ``cutoff``.

    Retention: a dead letter holds the whole transcript, which may not outlive the memories it
    would have become (they are dated by the same ``created_at``).
    """
    return [d for d in outbox.dead_letters(tenant_id) if parse_time(d.entry.created_at) < cutoff]


def drop_dead_lettered(outbox: "Outbox", entry: OutboxEntry) -> bool:
    """Second step of ``Outbox.dead_letter``, once the letter of ``entry`` is written: drop the
    pending entry only while it is this version (``swap``); True then, or when none is pending.
    A newer version (its conversation went on) stays and the letter is purged: False."""
    if outbox.swap(entry, None) or outbox.get(entry.entry_id, entry.tenant_id) is None:
        return True
    outbox.purge(entry.entry_id, entry.tenant_id)
    return False


@dataclass(frozen=True)
class ErasureMarker:
    """A durable record of a ``forget``: a tenant, a user or one conversation, at ``erased_at``.

    It covers every conversation of its scope that started at or before ``erased_at``
    (``user_id`` None: every user of the tenant; ``conversation_id`` None: every conversation).

    Attributes:
        tenant_id: The tenant.
        user_id: The erased user (None: every user of the tenant).
        conversation_id: Only this conversation of the user (None: all of them).
        erased_at: When the erasure was recorded (ISO 8601).
        marker_id: The marker's unique id.
    """

    tenant_id: str | None
    user_id: str | None = None
    conversation_id: str | None = None
    erased_at: str = field(default_factory=_now)
    marker_id: str = field(default_factory=lambda: "era-" + uuid.uuid4().hex)

    def covers(self, entry: OutboxEntry) -> bool:
        """Whether ``entry``'s conversation is erased by this marker."""
        if entry.tenant_id != self.tenant_id:
            return False
        if self.user_id is not None and entry.user_id != self.user_id:
            return False
        if self.conversation_id is not None and entry.conversation_id != self.conversation_id:
            return False
        return entry.started_at <= parse_time(self.erased_at)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ErasureMarker":
        """Rebuild from ``to_json`` output."""
        return cls(
            tenant_id=data.get("tenant_id"),
            user_id=data.get("user_id"),
            conversation_id=data.get("conversation_id"),
            erased_at=str(data["erased_at"]),
            marker_id=str(data["marker_id"]),
        )


#: ``erasure_folder`` of tenant-wide markers.
TENANT_WIDE_FOLDER = "all"
#: How a user's ``erasure_folder`` begins. It sorts after ``all`` and after the flat ``era-``
#: marker names of earlier versions, which ``S3Outbox.erasures`` relies on.
USER_FOLDER_PREFIX = "u-"


def erasure_folder(user_id: str | None) -> str:
    """The folder (under a tenant's ``erasures``) of a marker for ``user_id``: ``all`` for the
    whole tenant, else ``u-`` and a digest of the user id (no user id in object keys)."""
    if user_id is None:
        return TENANT_WIDE_FOLDER
    return USER_FOLDER_PREFIX + hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:32]


def may_cover_user(marker: ErasureMarker, user_id: str | None) -> bool:
    """Whether ``marker`` can erase conversations of ``user_id`` (None: any user)."""
    return user_id is None or marker.user_id is None or marker.user_id == user_id


@dataclass(frozen=True)
class Claim:
    """Proof that this process may work on one entry until ``release`` (``token``: backend data)."""

    tenant_id: str | None
    entry_id: str
    token: Any = None


@runtime_checkable
class Outbox(Protocol):
    """Durable pending entries, claims, dead letters and erasure markers, per tenant.

    ``tenant_id`` arguments name the entry's tenant (the S3 backend keeps one prefix per
    tenant and uses that tenant's credentials); the local backend ignores them.
    """

    def put(self, entry: OutboxEntry) -> str:
        """Write ``entry`` durably (replacing one with the same id); returns its id."""

    def get(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """The pending entry, or None if it is not (or no longer) pending."""

    def pending(self, tenant_id: str | None = None) -> list[OutboxEntry]:
        """Pending entries, oldest first: every tenant's, or only ``tenant_id``'s when given."""

    def remove(self, entry_id: str, tenant_id: str | None = None) -> None:
        """Delete a pending entry (a missing one is ignored)."""

    def swap(self, expected: OutboxEntry, new: OutboxEntry | None) -> bool:
        """Replace the pending entry with ``new`` (None: delete it) only while its stored version
        is ``expected`` (same id and ``created_at``), atomically with respect to other writers;
        False, with nothing written, when another version is stored or none is."""

    def claim(self, entry_id: str, tenant_id: str | None = None, *, ttl_seconds: float = 600.0) -> Claim | None:
        """Claim an entry for this process, or None while another process holds it."""

    def release(self, claim: Claim) -> None:
        """Give a claim up (idempotent)."""

    def dead_letter(self, entry: OutboxEntry, reason: str) -> bool:
        """Move ``entry`` from pending to the dead-letter area with ``reason``: the letter first,
        then the pending entry, only while it is this version (``swap``). A newer version pending
        (its conversation went on: a live process's, whose checkpoint another one adopted) stays,
        and the letter of the older one is purged: False. True otherwise (none pending too)."""

    def dead_letters(self, tenant_id: str | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first (every tenant's, or one tenant's)."""

    def revive(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """Move a dead letter back to pending (attempts reset); returns it, None if absent."""

    def purge(self, entry_id: str, tenant_id: str | None = None) -> bool:
        """Delete a dead letter for good; True if there was one."""

    def add_erasure(self, marker: ErasureMarker) -> None:
        """Record an erasure marker durably (filed under ``erasure_folder(marker.user_id)``)."""

    def erasures(self, tenant_id: str | None, user_id: str | None = None) -> list[ErasureMarker]:
        """The tenant's erasure markers; with ``user_id``, only those that can cover that user's
        conversations (tenant-wide ones and the user's own), without reading other users'."""
