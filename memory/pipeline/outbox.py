"""A durable outbox of conversations waiting to be summarized and stored.

One JSON file per entry under a directory, written atomically (temp file, fsync, rename,
directory fsync): once ``put`` returns, the entry survives a crash. The file name is derived
from ``memory.keys.summary_key`` (tenant, user, agent, conversation id and the conversation's
start marker ``opened``), so ending the same conversation twice replaces one entry instead of
adding a second, while a new conversation under a reused conversation id gets its own entry.

An entry is either *closed* (the conversation ended: summarize it) or *open* (a per-turn
checkpoint of a live conversation, overwritten by the next turn and finally by the closed
entry). Open entries left behind by a dead process are closed by the next start
(``SummaryPipeline.replay_pending``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memory.keys import summary_key
from memory.private_files import private_dir
from memory.pipeline.summarizer import Turn

logger = logging.getLogger(__name__)

_SUFFIX = ".json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


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
        created_at: When the entry was first written (ISO 8601).
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

    @property
    def key(self) -> str:
        """The deterministic vector key of this conversation's summary."""
        return summary_key(self.tenant_id, self.user_id, self.agent_name, self.conversation_id, self.opened)

    @property
    def entry_id(self) -> str:
        """The outbox id: the summary key itself (``sum-`` + hex digits, file-name safe)."""
        return self.key

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the entry."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "OutboxEntry":
        """Rebuild an entry from ``to_json`` output."""
        transcript = [Turn(role=str(t["role"]), text=str(t["text"])) for t in data["transcript"]]
        return cls(
            tenant_id=data.get("tenant_id"),
            user_id=str(data["user_id"]),
            agent_name=str(data["agent_name"]),
            conversation_id=str(data["conversation_id"]),
            transcript=transcript,
            created_at=str(data["created_at"]),
            attempts=int(data.get("attempts", 0)),
            opened=None if data.get("opened") is None else str(data["opened"]),
            open=data.get("open") is True,
        )


class Outbox:
    """Entries stored as files (0600) under ``directory`` (created 0700 if missing)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Open the outbox.

        Args:
            directory: Where entries are kept (created 0700 if missing); one process owns it.
        """
        self.directory = private_dir(directory)

    def _path(self, entry_id: str) -> Path:
        return self.directory / f"{entry_id}{_SUFFIX}"

    def put(self, entry: OutboxEntry) -> str:
        """Write ``entry`` durably (replacing one with the same id); returns its id."""
        entry_id = entry.entry_id
        data = json.dumps(entry.to_json(), ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{entry_id}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path(entry_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._sync_directory()
        return entry_id

    def get(self, entry_id: str) -> OutboxEntry | None:
        """The entry with ``entry_id``, or None if it is not (or no longer) pending."""
        try:
            raw = self._path(entry_id).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return OutboxEntry.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            logger.error("outbox entry %s is unreadable; leaving it in place", entry_id)
            return None

    def pending(self) -> list[OutboxEntry]:
        """Every readable pending entry, oldest first."""
        entries = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            entry = self.get(path.name[: -len(_SUFFIX)])
            if entry is not None:
                entries.append(entry)
        return sorted(entries, key=lambda e: e.created_at)

    def remove(self, entry_id: str) -> None:
        """Delete an entry (a missing one is ignored)."""
        self._path(entry_id).unlink(missing_ok=True)
        self._sync_directory()

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
