"""Background summarization: outbox first, then summarize and store on a bounded executor.

``end_conversation`` writes the entry to the durable outbox synchronously (accepted means
durable), then submits the work and returns at once. The worker summarizes the transcript,
stores one vector under the conversation's deterministic key (so a replay overwrites instead
of duplicating) and only then removes the outbox entry. Failures retry with exponential
backoff; an entry whose attempts are exhausted stays in the outbox for ``replay_pending``
(called on start). ``on_task_start(name) -> token`` / ``on_task_end(token)`` bracket every
task so an AgentCore app can report ``HealthyBusy`` while summaries are pending.
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

from memory.models import Scope
from memory.outbox import Outbox, OutboxEntry
from memory.protocols import MemoryStoreProtocol
from memory.summarizer import Summarizer

logger = logging.getLogger(__name__)

TaskStart = Callable[[str], Any]
TaskEnd = Callable[[Any], None]


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


class SummaryPipeline:
    """Summarizes finished conversations in the background without losing any."""

    def __init__(
        self,
        store: MemoryStoreProtocol,
        outbox: Outbox,
        summarizer: Summarizer,
        *,
        max_workers: int = 2,
        retry: RetryPolicy | None = None,
        on_task_start: TaskStart | None = None,
        on_task_end: TaskEnd | None = None,
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.summarizer = summarizer
        self.retry = retry or RetryPolicy()
        self._on_task_start = on_task_start
        self._on_task_end = on_task_end
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="memory-summary")
        self._lock = threading.RLock()  # done-callbacks may run inline under it
        self._stopping = threading.Event()
        self._futures: set[Future[None]] = set()
        self._inflight: dict[str, bool] = {}  # entry id -> re-run requested while running
        self.metrics: Counter[str] = Counter()

    def end_conversation(self, entry: OutboxEntry) -> str:
        """Record ``entry`` durably and schedule its summary; returns the outbox entry id."""
        with self._lock:
            entry_id = self.outbox.put(entry)
            self.metrics["accepted"] += 1
            self._schedule_locked(entry_id)
        return entry_id

    def replay_pending(self) -> int:
        """Schedule every entry left in the outbox (e.g. by a crash); returns how many."""
        entries = self.outbox.pending()
        with self._lock:
            for entry in entries:
                self._schedule_locked(entry.entry_id)
        if entries:
            logger.info("replaying %d pending conversation summaries", len(entries))
        self.metrics["replayed"] += len(entries)
        return len(entries)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every scheduled task has finished; False if ``timeout`` expired first."""
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
        """Stop the workers; with ``wait=False`` queued work is dropped (it stays in the outbox)."""
        if not wait:
            self._stopping.set()
        self._executor.shutdown(wait=wait, cancel_futures=not wait)

    def _schedule_locked(self, entry_id: str) -> None:
        if entry_id in self._inflight:
            self._inflight[entry_id] = True  # the running task re-reads the newer entry
            return
        token = self._task_started(entry_id)
        try:
            future = self._executor.submit(self._run, entry_id)
        except RuntimeError:  # executor shut down: the entry stays in the outbox
            self._task_ended(token)
            logger.warning("summary pipeline is shut down; entry left in the outbox")
            return
        self._inflight[entry_id] = False
        self._futures.add(future)
        future.add_done_callback(lambda f: self._finished(f, entry_id, token))

    def _finished(self, future: Future[None], entry_id: str, token: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            logger.error("summary task crashed; entry left in the outbox", exc_info=future.exception())
        self._task_ended(token)
        with self._lock:
            self._futures.discard(future)
            self._inflight.pop(entry_id, None)

    def _run(self, entry_id: str) -> None:
        while not self._stopping.is_set():
            entry = self.outbox.get(entry_id)
            if entry is None:
                return
            if not self._process_with_retries(entry):
                return
            with self._lock:
                if self._inflight.get(entry_id):
                    self._inflight[entry_id] = False
                    continue  # a newer transcript arrived while we worked: summarize it too
                self.outbox.remove(entry_id)
                return

    def _process_with_retries(self, entry: OutboxEntry) -> bool:
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                self._process(entry)
                return True
            except Exception as exc:
                self.metrics["failed_attempts"] += 1
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
        self.metrics["exhausted"] += 1
        logger.error("summary left in the outbox for replay (entry %s)", entry.entry_id)
        return False

    def _process(self, entry: OutboxEntry) -> None:
        summary = self.summarizer.summarize(entry.transcript)
        if not summary.strip():
            self.metrics["skipped_empty"] += 1
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
        self.metrics["stored"] += 1

    def _record_attempt(self, entry: OutboxEntry) -> None:
        with self._lock:
            if self._inflight.get(entry.entry_id):
                return  # a newer entry replaced this one; keep it as written
            current = self.outbox.get(entry.entry_id)
            if current is not None and current.created_at == entry.created_at:
                self.outbox.put(dataclasses.replace(current, attempts=current.attempts + 1))

    def _task_started(self, entry_id: str) -> Any:
        if self._on_task_start is None:
            return None
        try:
            return self._on_task_start(f"memory-summary-{entry_id[:12]}")
        except Exception:
            logger.warning("on_task_start hook failed", exc_info=True)
            return None

    def _task_ended(self, token: Any) -> None:
        if self._on_task_end is None:
            return
        try:
            self._on_task_end(token)
        except Exception:
            logger.warning("on_task_end hook failed", exc_info=True)
