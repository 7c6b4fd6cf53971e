"""The memory units of one finished conversation: its summary plus excerpts that keep the facts.

A summary is bounded and selective (the extractive one keeps only the user's statements, up to
``DEFAULT_MAX_CHARS``; an abstractive one compresses harder), so a fact said late, in passing or
by the assistant can be lost. Every conversation is therefore stored as:

* one ``summary`` unit under the conversation's summary key (``OutboxEntry.key``);
* ``excerpt`` units under ``<summary key>-x<NNN>``: windows of consecutive turns, both speakers,
  at most ``EXCERPT_MAX_TURNS`` turns and ``EXCERPT_MAX_CHARS`` characters each, consecutive
  windows sharing one turn (so a question and its answer are never only apart), covering the
  whole transcript;
* ``statement`` units under ``<summary key>-s<NNN>``: each sentence the user stated
  (``summarizer.user_statements``: pure questions dropped, repeats once), one longer than
  ``EXCERPT_MAX_CHARS`` split like a long turn (a whole turn without ". ", e.g. Japanese, is one
  "sentence" and can be more than a vector's 40 KB of metadata). A fact said in
  passing in a long turn full of other things is its own vector instead of a small part of
  one (bench/bench_recall.py measures what each unit type adds);
* ``fact`` units under ``<summary key>-f<NNN>``: the facts the agent's model extracted with an
  abstractive summary (``summarizer.Digest.facts``, at most ``summarizer.MAX_FACTS``, each at
  most ``summarizer.MAX_FACT_CHARS``); none with the extractive summary or the small local model.

Excerpts and statements with fewer than ``MIN_UNIT_TERMS`` content words are not stored:
"USER: Bye.\nASSISTANT: ok" holds no fact, and a small embedding model matches such short
social text to every greeting or vague question.

Conversations with more than ``MAX_EXCERPTS`` windows or statements keep the latest ones (logged).

All units carry the same metadata (user, agent, ``conversation_id``, start marker ``opened``,
``stored_at_epoch``) and ``type``, so ``forget`` (by user or conversation) and retention reach
every one of them. Keys are derived from the summary key: replaying a conversation overwrites
its units, and ``store_conversation`` deletes the excerpt, statement and fact keys a shorter
earlier version no longer has (``replaces``), so the stored set is exactly that of the latest
transcript and summary.

Sizes fit S3 Vectors: ``EXCERPT_MAX_CHARS`` characters of UTF-8 are at most ~3 KB of the 40 KB
per vector (content is non-filterable; a statement is at most ``EXCERPT_MAX_CHARS`` too; a fact is
at most ``MAX_FACT_CHARS``); 1 + 2 x ``MAX_EXCERPTS`` + ``MAX_FACTS``
units (and as many stale keys) fit one 500-vector put (and delete) batch.
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

from memory.pipeline.outbox import OutboxEntry, parse_time
from memory.pipeline.summarizer import (
    ASSISTANT_PREFIX,
    MAX_FACTS,
    USER_PREFIX,
    Turn,
    cut_at_sentence,
    user_statements,
)
from memory.stores.hybrid import tokenize
from memory.stores.protocol import MemoryBackend
from memory.types import (  # the unit types are defined with the metadata keys they are stored under
    EXCERPT_TYPE,
    FACT_TYPE,
    STATEMENT_TYPE,
    SUMMARY_TYPE,
    UNIT_TYPES as UNIT_TYPES,  # re-exported
    Memory,
    MemoryUnit,
    Scope,
)

logger = logging.getLogger(__name__)

EXCERPT_MAX_CHARS = 800
EXCERPT_MAX_TURNS = 2
MIN_UNIT_TERMS = 2
#: At most this many excerpts and this many statements per conversation (1 + 2 x 200 <= 500).
MAX_EXCERPTS = 200

_SPACES = re.compile(r"\s+")


def excerpt_key(summary_key: str, number: int) -> str:
    """The key of excerpt ``number`` (0-based) of the conversation with ``summary_key``."""
    return f"{summary_key}-x{number:03d}"


def statement_key(summary_key: str, number: int) -> str:
    """The key of statement ``number`` (0-based) of the conversation with ``summary_key``."""
    return f"{summary_key}-s{number:03d}"


def conversation_fact_key(summary_key: str, number: int) -> str:
    """The key of fact ``number`` (0-based) of the conversation with ``summary_key``."""
    return f"{summary_key}-f{number:03d}"


_UNIT_SUFFIX = re.compile(r"-[xsf]\d{3}$")
# What ``excerpt_key``, ``statement_key`` and ``conversation_fact_key`` append, for every number a
# conversation may use: ``unit_keys`` runs on every store (its stale-key delete).
_UNIT_KEY_SUFFIXES = (
    *(excerpt_key("", n) for n in range(MAX_EXCERPTS)),
    *(statement_key("", n) for n in range(MAX_EXCERPTS)),
    *(conversation_fact_key("", n) for n in range(MAX_FACTS)),
)


def summary_key_of(key: str) -> str:
    """The summary key a unit's key derives from (a summary's own key unchanged)."""
    return _UNIT_SUFFIX.sub("", key)


def unit_keys(summary_key: str) -> list[str]:
    """Every key a conversation's units may have (summary first)."""
    return [summary_key, *(summary_key + suffix for suffix in _UNIT_KEY_SUFFIXES)]


def _pieces(text: str, max_chars: int) -> list[str]:
    """``text`` split into pieces of at most ``max_chars``, at sentence ends or spaces if it has any."""
    pieces: list[str] = []
    text = text.strip()
    while text:
        piece = cut_at_sentence(text, max_chars).rstrip("…") or text[:max_chars]
        pieces.append(piece)
        text = text[len(piece) :].strip()
    return pieces


def _lines(turns: Sequence[Turn], max_chars: int) -> list[str]:
    """One line per turn with its speaker, turns longer than ``max_chars`` split into pieces."""
    lines: list[str] = []
    for turn in turns:
        prefix = USER_PREFIX if turn["role"] == "user" else ASSISTANT_PREFIX
        lines.extend(prefix + piece for piece in _pieces(_SPACES.sub(" ", turn["text"]), max_chars - len(prefix)))
    return lines


def excerpt_windows(
    turns: Sequence[Turn], *, max_chars: int = EXCERPT_MAX_CHARS, max_turns: int = EXCERPT_MAX_TURNS
) -> list[str]:
    """Windows of consecutive turns (``USER:``/``ASSISTANT:`` lines) covering every turn.

    Each window has at most ``max_turns`` lines and ``max_chars`` characters; the next window
    starts with the previous window's last line.
    """
    lines = _lines(turns, max_chars)
    windows: list[str] = []
    start = 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and end - start < max_turns and size + len(lines[end]) + 1 <= max_chars + 1:
            size += len(lines[end]) + 1
            end += 1
        end = max(end, start + 1)
        windows.append("\n".join(lines[start:end]))
        if end >= len(lines):
            break
        start = end - 1 if end - 1 > start else end
    return windows


def _latest(items: list[str], what: str) -> list[str]:
    if len(items) > MAX_EXCERPTS:
        logger.warning("conversation has %d %s; keeping the latest %d", len(items), what, MAX_EXCERPTS)
        return items[-MAX_EXCERPTS:]
    return items


def _informative(text: str) -> bool:
    return len(tokenize(text)) >= MIN_UNIT_TERMS


def conversation_units(
    summary_key: str, turns: Sequence[Turn], summary: str, facts: Sequence[str] = ()
) -> list[MemoryUnit]:
    """The units of a conversation: the summary (if any), its excerpt windows, statements and facts."""
    units = [MemoryUnit(summary_key, summary, SUMMARY_TYPE)] if summary.strip() else []
    windows = _latest([w for w in excerpt_windows(turns) if _informative(w)], "excerpt windows")
    units.extend(MemoryUnit(excerpt_key(summary_key, n), text, EXCERPT_TYPE) for n, text in enumerate(windows))
    statements = _latest(
        [
            piece
            for t in user_statements(turns)
            if t != summary.strip()
            for piece in _pieces(t, EXCERPT_MAX_CHARS)
            if _informative(piece)
        ],
        "statements",
    )
    units.extend(MemoryUnit(statement_key(summary_key, n), text, STATEMENT_TYPE) for n, text in enumerate(statements))
    kept = [f for f in dict.fromkeys(facts) if _informative(f)][:MAX_FACTS]
    units.extend(MemoryUnit(conversation_fact_key(summary_key, n), text, FACT_TYPE) for n, text in enumerate(kept))
    return units


def store_conversation(
    store: MemoryBackend, entry: OutboxEntry, summary: str, facts: Sequence[str] = ()
) -> list[Memory]:
    """Store every unit of ``entry`` (idempotent: same keys on replay, stale units deleted).

    The units are dated by the entry's ``created_at`` (the conversation's last change), so a
    summary retried or replayed days later keeps the conversation's date and expires with it.

    Args:
        store: The store of the entry's tenant.
        entry: The finished conversation.
        summary: Its summary (``Summarizer.digest(...).summary``).
        facts: The facts extracted with the summary (``Digest.facts``).

    Returns:
        The stored memories.
    """
    units = conversation_units(entry.key, entry.transcript, summary, facts)
    return store.store_units(
        _owner(entry),
        units,
        conversation_id=entry.conversation_id,
        opened=entry.opened,
        replaces=unit_keys(entry.key),
        happened_at=parse_time(entry.created_at),
    )


def unstore_conversation(store: MemoryBackend, entry: OutboxEntry) -> None:
    """Delete the units ``entry``'s conversation stored (those of its keys that exist, as a store
    of no units replacing them), and nothing of another conversation held under the same
    conversation id (a session that went on after an end)."""
    store.store_units(
        _owner(entry), [], conversation_id=entry.conversation_id, opened=entry.opened, replaces=unit_keys(entry.key)
    )


def _owner(entry: OutboxEntry) -> Scope:
    return Scope(user_id=entry.user_id, tenant_id=entry.tenant_id, agent_name=entry.agent_name)
