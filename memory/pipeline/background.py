"""Background summarization: outbox first, then summarize and store on a bounded executor.

``end_conversation`` writes the entry to the durable outbox synchronously (accepted means
durable), then submits the work and returns at once. The worker summarizes the transcript,
stores one vector under the conversation's deterministic key (so a replay overwrites instead
of duplicating) and only then removes the outbox entry. Failures retry with exponential
backoff (``RetryPolicy.delay``); an entry whose attempts are exhausted stays in the outbox and
waits for a re-sweep (``RetryPolicy.sweep_delay``: 30 s doubling to 10 min per exhausted
round), which the sweeper thread (``start_sweeper``) or a ``sweep()`` call runs in-process;
``replay_pending`` (called on start) picks up what a previous process left.

``checkpoint`` records the transcript of a conversation still going on as an *open* entry
(same id as its final entry), after every turn, so a process killed mid-conversation loses
nothing. Open entries are never scheduled in-process (neither the sweeper nor ``wait`` sees
them: they belong to live conversations); ``end_conversation`` overwrites one as closed.
``replay_pending`` treats open entries as ended, closes and schedules them. This assumes one
app process owns a state directory (true on AgentCore, one microVM per session, and for the
local app, one process); call ``replay_pending`` at start-up, before any conversation.

``on_task_start(name) -> token`` / ``on_task_end(token)`` bracket every accepted entry from
the moment it is scheduled until it is stored (in flight *or* waiting for a re-sweep), so an
AgentCore app reports ``HealthyBusy`` and keeps the microVM, whose disk holds the outbox.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, Callable

from memory import telemetry
from memory.types import Scope
from memory.pipeline.outbox import Outbox, OutboxEntry
from memory.stores.protocol import MemoryBackend
from memory.pipeline.summarizer import Summarizer

logger = logging.getLogger(__name__)

TaskStart = Callable[[str], Any]
TaskEnd = Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: with full jitter between attempts, doubling between sweeps.

    Attributes:
        max_attempts: Attempts per round before an entry waits for a sweep.
        base_delay: First backoff between attempts (seconds).
        max_delay: Largest backoff between attempts (seconds).
        sweep_base_delay: First wait before re-sweeping an exhausted entry (seconds).
        sweep_max_delay: Largest wait between sweeps (seconds).
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    sweep_base_delay: float = 30.0
    sweep_max_delay: float = 600.0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def sweep_delay(self, rounds: int) -> float:
        """Seconds before re-sweeping an entry whose attempts were exhausted ``rounds`` times."""
        return min(self.sweep_max_delay, self.sweep_base_delay * 2 ** (rounds - 1))


class SummaryPipeline:
    """Summarizes finished conversations in the background without losing any."""

    def __init__(
        self,
        store: MemoryBackend,
        outbox: Outbox,
        summarizer: Summarizer,
        *,
        max_workers: int = 2,
        retry: RetryPolicy | None = None,
        on_task_start: TaskStart | None = None,
        on_task_end: TaskEnd | None = None,
    ) -> None:
        """Create the pipeline (its worker threads start with the first entry).

        Args:
            store: Where summaries are stored.
            outbox: Where accepted conversations wait durably until stored.
            summarizer: Turns a transcript into the memory text.
            max_workers: Concurrent summaries.
            retry: Backoff between attempts and sweeps.
            on_task_start: Called with a name when an entry is scheduled; returns a token.
            on_task_end: Called with that token once the entry is stored.
        """
        self.store = store
        self.outbox = outbox
        self.summarizer = summarizer
        self.retry = retry or RetryPolicy()
        self._on_task_start = on_task_start
        self._on_task_end = on_task_end
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="memory-summary")
        self._lock = threading.RLock()  # done-callbacks may run inline under it
        self._stopping = threading.Event()  # abandon running work (shutdown without waiting)
        self._closed = threading.Event()  # no more re-sweeps
        self._wake = threading.Event()  # the sweeper re-reads the earliest due time
        self._sweeper: threading.Thread | None = None
        self._futures: set[Future[bool]] = set()
        self._inflight: dict[str, bool] = {}  # entry id -> re-run requested while running
        self._waiting: dict[str, float] = {}  # entry id -> monotonic time of its next sweep
        self._rounds: dict[str, int] = {}  # entry id -> exhausted rounds so far
        self._tokens: dict[str, Any] = {}  # entry id -> busy-task token, until it is stored
        self.metrics: Counter[str] = Counter()

    @property
    def waiting(self) -> int:
        """How many entries exhausted their attempts and wait for a re-sweep."""
        with self._lock:
            return len(self._waiting)

    def end_conversation(self, entry: OutboxEntry) -> str:
        """Record ``entry`` durably and schedule its summary; returns the outbox entry id."""
        with self._lock, telemetry.span("memory.outbox.write", _outbox_attributes(entry, open=False)):
            entry_id = self.outbox.put(dataclasses.replace(entry, open=False))
            self.metrics["accepted"] += 1
            self._schedule_locked(entry_id)
        return entry_id

    def checkpoint(self, entry: OutboxEntry) -> str:
        """Record a live conversation's transcript so far durably, as an open entry; returns its id.

        Nothing is scheduled. If a closed entry with the same id is being summarized (the
        conversation went on after an end), that task sees the open entry and leaves it alone.
        """
        with self._lock, telemetry.span("memory.outbox.write", _outbox_attributes(entry, open=True)):
            entry_id = self.outbox.put(dataclasses.replace(entry, open=True))
            if entry_id in self._inflight:
                self._inflight[entry_id] = True  # the task re-reads the entry instead of removing it
            self.metrics["checkpoints"] += 1
        return entry_id

    def replay_pending(self) -> int:
        """Schedule every entry left in the outbox (e.g. by a crash) now; returns how many.

        Open entries are conversations of a process that is gone: they are closed first.
        """
        with telemetry.span("memory.outbox.replay") as span:
            entries = self.outbox.pending()
            reopened = [entry for entry in entries if entry.open]
            telemetry.annotate(span, {"memory.outbox.replayed": len(entries), "memory.outbox.reopened": len(reopened)})
        with self._lock:
            for entry in reopened:
                self.outbox.put(dataclasses.replace(entry, open=False))
            for entry in entries:
                self._schedule_locked(entry.entry_id)
            self.metrics["replayed"] += len(entries)
            self.metrics["closed_at_replay"] += len(reopened)
        if entries:
            logger.info(
                "replaying %d pending conversation summaries (%d left open by a previous process)",
                len(entries),
                len(reopened),
            )
        return len(entries)

    def sweep(self) -> int:
        """Re-schedule the waiting entries whose backoff has elapsed; returns how many."""
        with self._lock:
            if self._closed.is_set():
                return 0
            now = time.monotonic()
            due = [entry_id for entry_id, at in self._waiting.items() if at <= now]
            for entry_id in due:
                self._schedule_locked(entry_id)
            self.metrics["swept"] += len(due)
        if due:
            logger.info("re-sweeping %d pending conversation summaries", len(due))
        return len(due)

    def start_sweeper(self) -> None:
        """Start the thread that re-sweeps waiting entries when their backoff elapses (once)."""
        with self._lock:
            if self._sweeper is not None or self._closed.is_set():
                return
            self._sweeper = threading.Thread(target=self._sweep_forever, name="memory-summary-sweeper", daemon=True)
            self._sweeper.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every scheduled task has finished; False if ``timeout`` expired first.

        Entries waiting for a re-sweep are not scheduled tasks: see ``waiting``; open
        entries (checkpoints of live conversations) are never scheduled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = set(self._futures)
            if not pending:
                return True
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            _, not_done = wait_futures(pending, timeout=remaining)
            if not_done and deadline is not None and time.monotonic() >= deadline:
                return False

    def shutdown(self, wait: bool = True) -> None:
        """Stop the sweeper and the workers; with ``wait=False`` queued work is dropped.

        Whatever is not stored stays in the outbox for the next start's ``replay_pending``.
        """
        self._closed.set()
        self._wake.set()
        if not wait:
            self._stopping.set()
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            tokens = [self._tokens.pop(entry_id) for entry_id in self._waiting if entry_id in self._tokens]
            self._waiting.clear()
        for token in tokens:
            self._task_ended(token)
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    def _sweep_forever(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                next_due = min(self._waiting.values(), default=None)
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            try:
                self.sweep()
            except Exception:
                logger.exception("summary sweeper failed")

    def _schedule_locked(self, entry_id: str) -> None:
        if entry_id in self._inflight:
            self._inflight[entry_id] = True  # the running task re-reads the newer entry
            return
        self._waiting.pop(entry_id, None)
        if entry_id not in self._tokens:
            self._tokens[entry_id] = self._task_started(entry_id)
        try:
            future = self._executor.submit(telemetry.in_background("memory.summary", self._run), entry_id)
        except RuntimeError:  # executor shut down: the entry stays in the outbox
            self._task_ended(self._tokens.pop(entry_id))
            logger.warning("summary pipeline is shut down; entry left in the outbox")
            return
        self._inflight[entry_id] = False
        self._futures.add(future)
        future.add_done_callback(lambda f: self._finished(f, entry_id))

    def _finished(self, future: Future[bool], entry_id: str) -> None:
        crashed = not future.cancelled() and future.exception() is not None
        if crashed:
            logger.error("summary task crashed; entry left in the outbox", exc_info=future.exception())
        stored = not future.cancelled() and not crashed and future.result()
        ended: list[Any] = []
        with self._lock:
            self._inflight.pop(entry_id, None)
            if stored or future.cancelled() or self._closed.is_set():
                self._rounds.pop(entry_id, None)
                if entry_id in self._tokens:
                    ended.append(self._tokens.pop(entry_id))
            else:  # exhausted or crashed: keep it pending (and the app busy) until a re-sweep
                rounds = self._rounds[entry_id] = self._rounds.get(entry_id, 0) + 1
                delay = self.retry.sweep_delay(rounds)
                self._waiting[entry_id] = time.monotonic() + delay
                self._wake.set()
                logger.warning("summary kept in the outbox; retry round %d in %.0f s", rounds + 1, delay)
        for token in ended:
            self._task_ended(token)
        with self._lock:  # last: ``wait`` returns once the hooks have run
            self._futures.discard(future)

    def _run(self, entry_id: str) -> bool:
        """Summarize and store the entry; True once it is stored (or no longer pending).

        An open entry belongs to a live conversation (it went on after an end): left as it is.
        """
        while not self._stopping.is_set():
            entry = self.outbox.get(entry_id)
            if entry is None or entry.open:
                return True
            if not self._process_with_retries(entry):
                return False
            with self._lock:
                if self._inflight.get(entry_id):
                    self._inflight[entry_id] = False
                    continue  # a newer transcript arrived while we worked: summarize it too
                self.outbox.remove(entry_id)
                return True
        return False

    def _process_with_retries(self, entry: OutboxEntry) -> bool:
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                self._process(entry)
                return True
            except Exception as exc:
                self._count("failed_attempts")
                logger.warning(
                    "summary attempt %d/%d failed for agent=%s: %s",
                    attempt,
                    self.retry.max_attempts,
                    entry.agent_name,
                    type(exc).__name__,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                self._record_attempt(entry)
                if attempt == self.retry.max_attempts or self._stopping.wait(self.retry.delay(attempt)):
                    break
        self._count("exhausted")
        logger.error("summary attempts exhausted (entry %s); kept in the outbox", entry.entry_id)
        return False

    def _process(self, entry: OutboxEntry) -> None:
        telemetry.annotate(telemetry.current_span(), _outbox_attributes(entry, open=entry.open))
        summary = self.summarizer.summarize(entry.transcript)
        if not summary.strip():
            self._count("skipped_empty")
            logger.info("conversation had nothing to remember; no summary stored")
            return
        scope = Scope(user_id=entry.user_id, tenant_id=entry.tenant_id, agent_name=entry.agent_name)
        self.store.store(
            scope,
            summary,
            conversation_id=entry.conversation_id,
            memory_type="summary",
            key=entry.key,
        )
        self._count("stored")

    def _count(self, name: str) -> None:
        telemetry.summary_counted(name)
        with self._lock:
            self.metrics[name] += 1

    def _record_attempt(self, entry: OutboxEntry) -> None:
        with self._lock:
            if self._inflight.get(entry.entry_id):
                return  # a newer entry replaced this one; keep it as written
            current = self.outbox.get(entry.entry_id)
            if current is not None and current.created_at == entry.created_at:
                self.outbox.put(dataclasses.replace(current, attempts=current.attempts + 1))

    def _task_started(self, entry_id: str) -> Any:
        telemetry.outbox_backlog(+1)
        if self._on_task_start is None:
            return None
        try:
            return self._on_task_start(f"memory-summary-{entry_id[:12]}")
        except Exception:
            logger.warning("on_task_start hook failed", exc_info=True)
            return None

    def _task_ended(self, token: Any) -> None:
        telemetry.outbox_backlog(-1)
        if self._on_task_end is None:
            return
        try:
            self._on_task_end(token)
        except Exception:
            logger.warning("on_task_end hook failed", exc_info=True)


def _outbox_attributes(entry: OutboxEntry, *, open: bool) -> dict[str, Any]:
    return {
        **telemetry.identity_attributes(entry.tenant_id, entry.user_id, entry.agent_name, entry.conversation_id),
        "memory.outbox.entry.open": open,
        "memory.transcript.turns": len(entry.transcript),
        "memory.attempts": entry.attempts,
    }
