"""Background summarization: outbox first, then summarize and store on a bounded executor.

``end_conversation`` writes the closed entry to the durable outbox synchronously (accepted
means durable), then submits the work and returns at once. A worker *claims* the entry
(``Outbox.claim``: one process at a time, whichever process replays it), summarizes the
transcript, stores the conversation's units (summary, excerpts, statements, facts:
``memory.pipeline.units``) under keys derived from its deterministic summary key (a replay
overwrites instead of duplicating), and only then removes the entry and releases the claim. An entry found claimed by
another process is left to it, and looked at again (not busy meanwhile, by the sweeper thread)
once that claim can have expired (``claim_ttl_seconds``): a claimant killed before it stored the
entry leaves its S3 lease behind.

Erasure: before every store, and again right after it (succeeded or failed: a failed store may
have put units), the worker reads the tenant's erasure markers (``memory.pipeline.erasure``); a
conversation a marker covers is dropped (what was just stored is deleted again), its entry
removed. ``end_conversation`` checks them too.

Failures retry with exponential backoff (``RetryPolicy.delay``) up to ``max_attempts`` per
round; an exhausted entry waits for a re-sweep (``RetryPolicy.sweep_delay``), run by the
sweeper thread (``start_sweeper``) or ``sweep()``. After ``max_rounds`` rounds or
``max_busy_seconds`` since its first failed attempt (no further attempt then; a re-sweep due
later runs at that bound, as the last attempt), or at once for
an error that retrying cannot fix (access denied, index missing, misconfiguration, invalid
data), the entry moves to the outbox's dead-letter area with the error type as reason (and, for a
``ConfigurationError``, its message: which index, dimension or metric; ``errors.error_reason``), and its
busy task ends (a newer version another process wrote meanwhile, e.g. the live owner of an adopted
checkpoint, stays pending instead, with no letter of the older one: ``Outbox.dead_letter``). A newer
version of that conversation written later by this process (it went on under the same key:
a checkpoint or another end) purges the dead letter, which `outbox retry` would otherwise put
back over it or store over its units (this process remembers its latest
``DEAD_LETTERS_REMEMBERED`` dead letters: a conversation going on after that many later ones
keeps its letter, which an operator's `outbox retry` would put back, older, over the newer
version). A task that crashes (the outbox itself failing, so
nothing can be dead-lettered) counts rounds too: at the same bounds its busy task ends and the
entry stays pending for a later replay. The bounds hold for the app too, not only per entry:
once summaries have failed for ``max_busy_seconds`` with none stored since (a backlog replayed
during an outage would otherwise keep the app busy for one entry after the other), every busy
task ends and no new one starts; the entries go on in the background within their own bounds,
and the next stored summary makes the pipeline report its work as busy again.

``checkpoint`` queues the transcript of a conversation still going on as an *open* entry
(same id as its final entry). A writer thread writes the queued checkpoints in the background,
coalesced per conversation (latest transcript wins; written ``checkpoint_interval`` seconds
after the first queued turn, so at most one write per conversation per interval and none for a
conversation that ends sooner), never on the turn's response path (the interpreter's exit
writes what every pipeline not shut down still has queued, all at once, within one
``EXIT_FLUSH_SECONDS``); a checkpoint whose write failed is queued again (unless a newer one
was) and written after a pause: a second after a transient failure; after a refusal that
retrying cannot fix (``PERMANENT_ERRORS``), a pause doubling with each refusal in a row up to
``RetryPolicy.sweep_max_delay`` (a new turn's
transcript replaces the queued one but waits too; ``flush`` writes at once). ``end_conversation``
discards a queued checkpoint of its conversation once the closed entry (which supersedes it)
is written; if that write fails, the checkpoint is still written, and so is one longer than the
closed entry (a turn answered while the entry was written: the conversation went on). Open
entries are never scheduled in-process; ``replay_pending`` adopts the open entries older than
``orphan_after_seconds`` (their process is gone) and the closed ones; the younger open entries
it found from before its start are adopted (by the sweeper thread) once unchanged that long.
A stored entry is removed only while it is still the version summarized (``Outbox.swap``: S3
``If-Match``, a ``flock`` locally): a newer version another process wrote meanwhile (an adopted
entry's process lived on after all, or the conversation went on in another process) is
summarized too instead, or left to its process while it is open and not adopted.

``on_task_start(name) -> token`` / ``on_task_end(token)`` bracket every accepted entry from
the moment it is scheduled until it is stored, dead-lettered or handed to another process
(in flight *or* waiting for a re-sweep), so an AgentCore app reports ``HealthyBusy`` meanwhile,
unless summaries have been failing for longer than the time bound (above).
"""

from __future__ import annotations

import atexit
import dataclasses
import enum
import logging
import random
import threading
import time
import weakref
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from datetime import datetime, timezone
from typing import Any, Callable

from cachetools import LRUCache

from memory import telemetry
from memory.errors import AccessDenied, ConfigurationError, NotFound, ValidationError, error_reason
from memory.pipeline.erasure import covering
from memory.pipeline.outbox import ErasureMarker, Outbox, OutboxEntry, parse_time
from memory.pipeline.summarizer import Summarizer
from memory.pipeline.units import store_conversation, unstore_conversation
from memory.stores.protocol import MemoryBackend
from memory.stores.scoping import check_storable_identity
from memory.stores.single_tenant import SingleTenantStore

logger = logging.getLogger(__name__)

TaskStart = Callable[[str], Any]
TaskEnd = Callable[[Any], None]
Ref = tuple[str | None, str]  # (tenant id, entry id)

#: Errors that retrying cannot fix: the entry is dead-lettered at once.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (AccessDenied, NotFound, ConfigurationError, ValidationError)
_STRIPES = 64
_MARKER_CACHE_SIZE = 4096  # (tenant, user) pairs whose erasure markers the checkpoint writer keeps
#: The latest dead letters this process made that it remembers, to purge one once a newer
#: version of its conversation is written (older ones are forgotten: module docstring).
DEAD_LETTERS_REMEMBERED = 4096
#: The latest live conversations this process found erased that it remembers (no I/O to refuse
#: their checkpoints); an older one's next checkpoint or end is checked against the markers again.
ERASED_REMEMBERED = 4096
_CHECKPOINT_RETRY_SECONDS = 1.0  # pause before writing again a checkpoint whose write failed
_CHECKPOINT_FAILURE_LOG_SECONDS = 60.0  # a checkpoint still failing is logged at most this often
#: How long the interpreter's exit waits for the checkpoints still queued (``shutdown`` not called),
#: in all: every such pipeline writes at once.
EXIT_FLUSH_SECONDS = 10.0
_NOT_BUSY = object()  # the token of an entry scheduled while the pipeline does not report busy


class _Outcome(enum.Enum):
    STORED = "stored"
    GONE = "gone"  # removed, erased, live (open) or already stored by someone else
    ELSEWHERE = "elsewhere"  # another process holds the claim
    DEAD = "dead"
    FAILED = "failed"  # exhausted this round: wait for a re-sweep


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: full jitter between attempts, doubling between rounds,
    then a dead letter (AgentCore ends an idle session after 15 minutes; a session kept
    HealthyBusy lives until its maximum lifetime).

    Attributes:
        max_attempts: Attempts per round before an entry waits for a sweep.
        base_delay: First backoff between attempts (seconds).
        max_delay: Largest backoff between attempts (seconds).
        sweep_base_delay: First wait before re-sweeping an exhausted entry (seconds).
        sweep_max_delay: Largest wait between sweeps (seconds).
        max_rounds: Exhausted rounds after which the entry is dead-lettered.
        max_busy_seconds: Seconds after its first failure after which the entry is dead-lettered;
            also how long the pipeline reports busy while summaries fail and none is stored, and
            while the start-up replay lists the outbox (``start_replay``).
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    sweep_base_delay: float = 30.0
    sweep_max_delay: float = 600.0
    max_rounds: int = 3
    max_busy_seconds: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

    def sweep_delay(self, rounds: int) -> float:
        """Seconds before re-sweeping an entry whose attempts were exhausted ``rounds`` times."""
        return min(self.sweep_max_delay, self.sweep_base_delay * 2 ** (rounds - 1))


class ErasureWatch:
    """A live conversation's erasure flag (``SummaryPipeline.watch_erasure``): ``found`` once the
    pipeline has read an erasure marker covering ``entry``'s conversation."""

    __slots__ = ("entry", "_found", "__weakref__")

    def __init__(self, entry: OutboxEntry) -> None:
        self.entry = entry
        self._found = threading.Event()

    @property
    def found(self) -> bool:
        """Whether a marker read so far covers the conversation (no I/O)."""
        return self._found.is_set()

    def _check(self, markers: list[ErasureMarker]) -> None:
        if markers and covering(markers, self.entry) is not None:
            self._found.set()


class SummaryPipeline:
    """Summarizes finished conversations in the background without losing or resurrecting any."""

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
        claim_ttl_seconds: float = 600.0,
        orphan_after_seconds: float = 0.0,
        checkpoint_interval: float = 0.0,
        erasure_refresh_seconds: float = 5.0,
    ) -> None:
        """Create the pipeline (its worker threads start with the first entry).

        Args:
            store: Where summaries are stored.
            outbox: Where accepted conversations wait durably until stored (``Outbox`` protocol:
                ``LocalOutbox`` or ``S3Outbox``); also holds claims, dead letters, erasure markers.
            summarizer: Turns a transcript into the memory text.
            max_workers: Concurrent summaries.
            retry: Backoff between attempts and sweeps, and when to dead-letter.
            on_task_start: Called with a name when an entry is scheduled; returns a token.
            on_task_end: Called with that token once the entry is stored, dead-lettered or
                left to the process that claimed it.
            claim_ttl_seconds: Lease of a claim on the S3 outbox (taken over once expired); also
                when an entry found claimed elsewhere is looked at again.
            orphan_after_seconds: Age after which ``replay_pending`` adopts an open entry.
            checkpoint_interval: Seconds a queued checkpoint waits (coalescing) before its write.
            erasure_refresh_seconds: How long the checkpoint writer trusts its cached markers
                (every store reads them fresh).
        """
        self.store = store
        self.outbox = outbox
        # a store pinned to one tenant refuses every other's: replay reads only that tenant's
        # entries (a shared outbox bucket holds other deployments' too, which would be dead-lettered)
        self._tenant = store.tenant_id if isinstance(store, SingleTenantStore) else None
        self.summarizer = summarizer
        self.retry = retry or RetryPolicy()
        self.claim_ttl_seconds = claim_ttl_seconds
        self.orphan_after_seconds = orphan_after_seconds
        self.checkpoint_interval = checkpoint_interval
        self.erasure_refresh_seconds = erasure_refresh_seconds
        self._on_task_start = on_task_start
        self._on_task_end = on_task_end
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="memory-summary")
        self._lock = threading.RLock()  # done-callbacks may run inline under it
        self._stripes = [threading.Lock() for _ in range(_STRIPES)]  # per-entry writes; taken before _lock
        self._stopping = threading.Event()  # abandon running work (shutdown without waiting)
        self._closed = threading.Event()  # no more re-sweeps or checkpoints
        self._hurry = threading.Event()  # the checkpoint writer skips its coalescing wait (flush)
        self._wake = threading.Event()  # the sweeper re-reads the earliest due time
        self._sweeper: threading.Thread | None = None
        self._replaying: threading.Thread | None = None  # ``start_replay``'s thread
        self._futures: set[Future[_Outcome]] = set()
        self._inflight: dict[Ref, bool] = {}  # ref -> re-run requested while running
        self._rerun_causes: dict[Ref, Any] = {}  # ref -> telemetry context of the latest re-run request
        self._causes: dict[Ref, Any] = {}  # ref -> telemetry context it was scheduled in (its re-sweeps too)
        self._waiting: dict[Ref, float] = {}  # ref -> monotonic time of its next sweep
        self._rechecks: dict[Ref, float] = {}  # ref claimed elsewhere -> when that claim has expired
        self._young: dict[Ref, float] = {}  # open entry of another process, too young -> when to look again
        self._rounds: dict[Ref, int] = {}  # ref -> exhausted rounds so far
        self._first_failure: dict[Ref, float] = {}  # ref -> monotonic time of its first failure
        self._tokens: dict[Ref, Any] = {}  # ref -> busy-task token (or _NOT_BUSY), until it is done
        self._failing_since: float | None = None  # monotonic time of the first failure since a store
        self._busy_released = False  # failing for longer than the time bound: not reporting busy
        self._adopted: set[Ref] = set()  # open entries of dead processes, taken over by replay
        # the latest dead-lettered here: a newer version written supersedes the letter
        self._dead: LRUCache[Ref, bool] = LRUCache(maxsize=DEAD_LETTERS_REMEMBERED)
        # queued, latest transcript wins; written in the context of the turn that queued it
        self._checkpoints: dict[Ref, tuple[OutboxEntry, Any]] = {}
        self._writing = 0  # checkpoint writes in progress
        self._writer_wake = threading.Event()
        self._writer: threading.Thread | None = None
        # ref -> (monotonic time of its last log line, failures since that line, failures in all)
        self._failing: dict[Ref, tuple[float, int, int]] = {}
        # ref whose checkpoint write failed -> (refusals in a row, monotonic time of its next write)
        self._retry_at: dict[Ref, tuple[int, float]] = {}
        # the latest live conversations found erased
        self._erased: LRUCache[Ref, bool] = LRUCache(maxsize=ERASED_REMEMBERED)
        self._markers: dict[tuple[str | None, str], tuple[float, list[ErasureMarker]]] = {}
        # (tenant, user) -> the live conversations' watches, held by their plugins (weakly here)
        self._watches: dict[tuple[str | None, str], weakref.WeakSet[ErasureWatch]] = {}
        self._watches_pruned_at = _MARKER_CACHE_SIZE  # prune users with no watch left beyond this
        self._created_at = datetime.now(timezone.utc)  # open entries written later are not orphans
        self.metrics: Counter[str] = Counter()
        # the writer is a daemon thread, stopped without a word at exit: queued checkpoints are
        # written first (a script that never shuts the pipeline down; the app flushes at SIGTERM)
        _flushed_at_exit(self)

    @property
    def waiting(self) -> int:
        """How many entries exhausted their attempts and wait for a re-sweep."""
        with self._lock:
            return len(self._waiting)

    @property
    def in_flight(self) -> int:
        """How many scheduled tasks (summaries) have not finished."""
        with self._lock:
            return len(self._futures)

    @property
    def replaying(self) -> bool:
        """Whether ``start_replay``'s thread is still listing the outbox and scheduling."""
        with self._lock:
            return self._replaying is not None and self._replaying.is_alive()

    # -- conversations ------------------------------------------------------------------------

    def end_conversation(self, entry: OutboxEntry) -> str | None:
        """Record ``entry`` durably (closed) and schedule its summary; returns the entry id.

        Returns None, writing nothing, when an erasure marker covers the conversation. Raises
        ``IdentityTooLong``, writing nothing, for an entry whose units could never be stored.
        """
        _check_storable(entry)
        ref = _ref(entry)
        with self._stripe(ref):  # the checkpoint writer waits: no checkpoint lands after the entry
            if self._erased_now(entry):
                self._drop_erased(entry)
                return None
            with telemetry.span("memory.outbox.write", _outbox_attributes(entry, open=False)):
                entry_id = self.outbox.put(dataclasses.replace(entry, open=False))
                self._supersede_dead_letter(ref)
                with self._lock:  # scheduled under the write span: the summary's trace links to it
                    # superseded only now: if the write failed, the queued checkpoint is still written;
                    # one longer than this entry (a turn answered while it was written) is written after it
                    queued = self._checkpoints.get(ref)
                    if queued is None or len(queued[0].transcript) <= len(entry.transcript):
                        self._checkpoints.pop(ref, None)
                        self._failing.pop(ref, None)
                        self._retry_at.pop(ref, None)
                    self.metrics["accepted"] += 1
                    self._schedule_locked(ref)
        return entry_id

    def checkpoint(self, entry: OutboxEntry) -> str | None:
        """Queue a live conversation's transcript so far as an open entry; returns its id.

        Written in the background (``flush`` waits for it). Nothing is scheduled. Returns None
        when the conversation was found erased (``is_erased``); ``IdentityTooLong`` as
        ``end_conversation``.
        """
        _check_storable(entry)
        ref = _ref(entry)
        with self._lock:
            if ref in self._erased or self._closed.is_set():
                return None
            queued = entry if entry.open else dataclasses.replace(entry, open=True)
            self._checkpoints[ref] = (queued, telemetry.cause())
            self.metrics["checkpoints_queued"] += 1
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_forever, name="memory-checkpoints", daemon=True)
                self._writer.start()
        self._writer_wake.set()
        return entry.entry_id

    def is_erased(self, tenant_id: str | None, entry_id: str) -> bool:
        """Whether this process found the live conversation of that entry (its tenant and id, the
        summary key) covered by an erasure marker; no I/O, so a plugin asks before every turn."""
        with self._lock:
            return (tenant_id, entry_id) in self._erased

    def watch_erasure(self, entry: OutboxEntry) -> ErasureWatch:
        """A flag set as soon as this pipeline reads an erasure marker covering ``entry``'s live
        conversation (any checkpoint, end or summary of its user reads them), or already set if
        the markers it keeps for the user do. No I/O, and exact whatever was erased or read for
        other users meanwhile: a plugin asks it before every turn. Held weakly here: it lasts as
        long as the caller keeps it."""
        watch = ErasureWatch(entry)
        owner = (entry.tenant_id, entry.user_id)
        with self._lock:
            cached = self._markers.get(owner)
            if cached is not None:
                watch._check(cached[1])
            self._watches.setdefault(owner, weakref.WeakSet()).add(watch)
            if len(self._watches) > self._watches_pruned_at:
                for gone in [key for key, watches in self._watches.items() if not watches]:
                    del self._watches[gone]
                self._watches_pruned_at = max(_MARKER_CACHE_SIZE, 2 * len(self._watches))
        return watch

    def flush(self, timeout: float | None = None) -> bool:
        """Write every queued checkpoint now (no coalescing wait) and wait for it; False if
        ``timeout`` expired first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._hurry.set()
        try:
            while True:
                with self._lock:
                    if not self._checkpoints and not self._writing:
                        return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                self._writer_wake.set()
                time.sleep(0.002)
        finally:
            self._hurry.clear()

    # -- replay and sweeps --------------------------------------------------------------------

    def replay_pending(self) -> int:
        """Schedule the entries other processes left (e.g. by a crash) now; returns how many.

        Closed entries are all scheduled (claims keep two processes from both storing one);
        open entries only once unchanged for ``orphan_after_seconds`` (their process is gone)
        and written before this pipeline was created (a later one belongs to a live process,
        perhaps this one); the sweeper thread adopts a younger one of those once it is old
        enough. An entry this process is summarizing is left to that task. With a store pinned to
        one tenant (``SingleTenantStore.tenant_id``) only that tenant's entries are read.
        """
        caller = telemetry.cause()  # summaries are not caused by the replay span: they are the caller's
        with telemetry.span("memory.outbox.replay") as span:
            entries = self.outbox.pending(self._tenant)
            now = datetime.now(timezone.utc)
            with self._lock:
                # one in flight here (ended by this process while the replay listed) is its
                # task's: scheduling it would request a re-run of the transcript that task reads
                entries = [e for e in entries if _ref(e) not in self._inflight]
                waits = {_ref(e): self._orphan_wait(e, now) for e in entries}
                orphans = [e for e in entries if (wait := waits[_ref(e)]) is not None and wait <= 0]
                self._track_young_locked({ref: wait for ref, wait in waits.items() if wait is not None and wait > 0})
                chosen = [e for e in entries if not e.open] + orphans
                for entry in orphans:
                    self._adopted.add(_ref(entry))
                with telemetry.within(caller):
                    for entry in chosen:
                        self._schedule_locked(_ref(entry))
                self.metrics["replayed"] += len(chosen)
                self.metrics["closed_at_replay"] += len(orphans)
            telemetry.annotate(span, {"memory.outbox.replayed": len(chosen), "memory.outbox.reopened": len(orphans)})
        if chosen:
            logger.info(
                "replaying %d pending conversation summaries (%d left open by a previous process)",
                len(chosen),
                len(orphans),
            )
        return len(chosen)

    def start_replay(self) -> None:
        """Run ``replay_pending`` on a thread, so that the app serves at once however long the
        outbox takes to list (on AgentCore every session starts a process, and the outbox holds
        the checkpoints of every live session). Busy (``on_task_start``) until the replay has
        scheduled what it found, for at most ``retry.max_busy_seconds`` (an outage can stall the
        listing for every tenant in turn: each one's STS call and listing timing out after
        botocore's retries); a failure is logged and the entries stay for the next start."""
        token = self._busy("memory-outbox-replay")
        idle = threading.Lock()  # held once the busy task has ended

        def end_busy(*, overdue: bool) -> None:
            if not idle.acquire(blocking=False):
                return
            if overdue:
                logger.warning("outbox replay still running after %.0f s; no longer reported busy",
                               self.retry.max_busy_seconds)
            self._idle(token)

        bound = threading.Timer(self.retry.max_busy_seconds, end_busy, kwargs={"overdue": True})
        bound.daemon = True

        def replay() -> None:
            try:
                self.replay_pending()
            except Exception as exc:  # noqa: BLE001 - best effort: the outbox keeps the entries
                logger.warning("outbox replay failed (%s); pending entries wait for the next start", error_reason(exc))
            finally:
                bound.cancel()
                end_busy(overdue=False)

        bound.start()
        thread = threading.Thread(target=replay, name="memory-outbox-replay", daemon=True)
        with self._lock:  # started as published: a ``wait`` meanwhile joins a started thread
            self._replaying = thread
            thread.start()

    def sweep(self) -> int:
        """Re-schedule the waiting entries whose backoff has elapsed; returns how many."""
        with self._lock:
            if self._closed.is_set():
                return 0
            now = time.monotonic()
            due = [ref for ref, at in [*self._waiting.items(), *self._rechecks.items()] if at <= now]
            for ref in due:
                with telemetry.within(self._causes.get(ref, telemetry.NO_CAUSE)):  # not the sweeper's
                    self._schedule_locked(ref)
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
        """Block until ``start_replay`` has scheduled what it found and every scheduled task has
        finished; False if ``timeout`` expired first.

        Entries waiting for a re-sweep are not scheduled tasks: see ``waiting``; open
        entries (checkpoints of live conversations) are never scheduled.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            replaying = self._replaying
        if replaying is not None:  # a shutdown right after start-up: what it finds is waited for too
            replaying.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if replaying.is_alive():
                return False
        while True:
            with self._lock:
                pending = set(self._futures)
            if not pending:
                return True
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            _, not_done = wait_futures(pending, timeout=remaining)
            if not_done and deadline is not None and time.monotonic() >= deadline:
                return False

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Write queued checkpoints, stop the sweeper and the workers (``wait=False`` drops
        queued work). Whatever is not stored stays in the outbox for a later ``replay_pending``.

        ``timeout`` bounds the checkpoint writes and the joins of the pipeline's threads (by
        default up to 10 s and 5 s each); ``wait=True`` waits for the workers regardless.
        """
        deadline = time.monotonic() + (10.0 if timeout is None else timeout)
        self.flush(timeout=deadline - time.monotonic())
        self._closed.set()
        self._hurry.set()
        self._wake.set()
        self._writer_wake.set()
        if not wait:
            self._stopping.set()
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            tokens = [self._tokens.pop(ref) for ref in self._waiting if ref in self._tokens]
            self._waiting.clear()
            self._rechecks.clear()
            self._young.clear()
            self._causes.clear()
        for token in tokens:
            self._task_ended(token)
        for thread in (self._sweeper, self._writer):
            if thread is not None:
                thread.join(timeout=5.0 if timeout is None else max(0.0, deadline - time.monotonic()))

    # -- checkpoint writer --------------------------------------------------------------------

    def _write_forever(self) -> None:
        while not self._closed.is_set():
            self._writer_wake.wait(self._until_next_write())
            if self.checkpoint_interval > 0:
                # coalesce: turns answered meanwhile replace the queued transcript, and a
                # conversation that ends within the interval needs no checkpoint at all
                self._hurry.wait(self.checkpoint_interval)
            self._writer_wake.clear()
            now, hurry = time.monotonic(), self._hurry.is_set()
            with self._lock:  # a failed one waits for its pause (``flush`` writes it now)
                refs = [ref for ref in self._checkpoints if hurry or self._retry_at.get(ref, (0, now))[1] <= now]
                self._writing += len(refs)
            failed = False
            for ref in refs:
                try:
                    failed = not self._write_checkpoint(ref) or failed
                except Exception:
                    logger.exception("checkpoint writer failed")
                finally:
                    with self._lock:
                        self._writing -= 1
            if failed and hurry:  # flushing a failing outbox: a pause instead of spinning
                self._closed.wait(_CHECKPOINT_RETRY_SECONDS)

    def _until_next_write(self) -> float | None:
        """Seconds until a queued checkpoint is due (0: one is now), None when none is queued."""
        with self._lock:
            dues = [self._retry_at.get(ref, (0, 0.0))[1] for ref in self._checkpoints]
        return None if not dues else max(0.0, min(dues) - time.monotonic())

    def _pause_after_failure(self, ref: Ref, exc: Exception) -> float:
        """Schedule the next write of ``ref``'s checkpoint; returns the pause (seconds).

        A transient failure is written again after ``_CHECKPOINT_RETRY_SECONDS``; a refusal that
        retrying cannot fix (``PERMANENT_ERRORS``: access denied, a KMS key policy, a missing
        bucket) after a pause doubling with each refusal in a row, up to ``retry.sweep_max_delay``,
        so a refused outbox (and the STS AssumeRole before each write) is not called every second.
        """
        with self._lock:
            refusals = self._retry_at.get(ref, (0, 0.0))[0] + 1 if isinstance(exc, PERMANENT_ERRORS) else 0
            pause = _CHECKPOINT_RETRY_SECONDS
            if refusals:
                pause = min(self.retry.sweep_max_delay, _CHECKPOINT_RETRY_SECONDS * 2 ** (refusals - 1))
            self._retry_at[ref] = (refusals, time.monotonic() + pause)
        return pause

    def _write_checkpoint(self, ref: Ref) -> bool:
        """Write the queued checkpoint of ``ref``; False if that failed (it is then queued again,
        unless a newer one was meanwhile, so the turns answered stay within the loss window)."""
        with self._stripe(ref):
            with self._lock:
                queued = self._checkpoints.pop(ref, None)
                if queued is None:
                    self._failing.pop(ref, None)
                    self._retry_at.pop(ref, None)
                    return True  # superseded by the closed entry
            entry, cause = queued
            try:
                with telemetry.within(cause):  # this thread's own context is whichever turn started it
                    if self._erased_cached(entry):
                        self._drop_erased(entry)
                        return True
                    with telemetry.span("memory.outbox.write", _outbox_attributes(entry, open=True)):
                        self.outbox.put(entry)
                    self._supersede_dead_letter(ref)
            except Exception as exc:
                with self._lock:
                    self.metrics["checkpoint_failures"] += 1
                    if ref not in self._erased:
                        self._checkpoints.setdefault(ref, queued)
                self._log_checkpoint_failure(ref, exc, self._pause_after_failure(ref, exc))
                return False
            with self._lock:
                if ref in self._inflight:
                    self._inflight[ref] = True  # the running task re-reads the entry instead of removing it
                self.metrics["checkpoints"] += 1
                failing = self._failing.pop(ref, None)
                self._retry_at.pop(ref, None)
            if failing is not None:
                logger.warning("checkpoint written again after %d failed writes", failing[2])
        return True

    def _log_checkpoint_failure(self, ref: Ref, exc: Exception, pause: float) -> None:
        """Log a conversation's first failed checkpoint write, then at most one line a minute
        while they keep failing (written again after ``pause``), with how many failed meanwhile."""
        now = time.monotonic()
        reason = error_reason(exc)
        with self._lock:
            previous = self._failing.get(ref)
            if previous is not None and now - previous[0] < _CHECKPOINT_FAILURE_LOG_SECONDS:
                self._failing[ref] = (previous[0], previous[1] + 1, previous[2] + 1)
                return
            self._failing[ref] = (now, 0, 1 if previous is None else previous[2] + 1)
        if previous is None:
            logger.error(
                "checkpoint write failed (%s); written again in %.0f s (longer while refused), reported at most every %.0f s",
                reason,
                pause,
                _CHECKPOINT_FAILURE_LOG_SECONDS,
            )
        else:
            logger.error(
                "checkpoint write still failing (%s): %d failed writes since the last report, %d in all",
                reason,
                previous[1] + 1,
                previous[2] + 1,
            )

    # -- erasure ------------------------------------------------------------------------------

    def _markers_for(self, entry: OutboxEntry, *, fresh: bool) -> list[ErasureMarker]:
        """The markers that can cover ``entry``'s user (cached per tenant and user unless fresh)."""
        owner = (entry.tenant_id, entry.user_id)
        with self._lock:
            cached = self._markers.get(owner)
        if not fresh and cached is not None and time.monotonic() - cached[0] < self.erasure_refresh_seconds:
            return cached[1]
        read_at = time.monotonic()  # the listing may miss a marker written after this instant
        markers = self.outbox.erasures(entry.tenant_id, entry.user_id)
        with self._lock:
            for watch in list(self._watches.get(owner, ())):
                watch._check(markers)  # markers are never removed: an older listing sets no less
            current = self._markers.get(owner)
            if current is None or current[0] <= read_at:  # a listing begun earlier never replaces a newer one
                if current is None and len(self._markers) >= _MARKER_CACHE_SIZE:
                    self._markers.clear()
                self._markers[owner] = (read_at, markers)
        return markers

    def _erased_now(self, entry: OutboxEntry) -> bool:
        return covering(self._markers_for(entry, fresh=True), entry) is not None

    def _erased_cached(self, entry: OutboxEntry) -> bool:
        return covering(self._markers_for(entry, fresh=False), entry) is not None

    def _drop_erased(self, entry: OutboxEntry) -> None:
        """Forget an erased conversation here: its outbox entry and any later checkpoint."""
        self.outbox.remove(entry.entry_id, entry.tenant_id)
        with self._lock:
            self._erased[_ref(entry)] = True
            self._checkpoints.pop(_ref(entry), None)
            self._failing.pop(_ref(entry), None)
            self._retry_at.pop(_ref(entry), None)
            self.metrics["erased_dropped"] += 1
        logger.info("conversation covered by an erasure marker: dropped, nothing stored")

    # -- scheduling ---------------------------------------------------------------------------

    def _sweep_forever(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                next_due = min([*self._waiting.values(), *self._rechecks.values(), *self._young.values()], default=None)
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()
            try:
                self.sweep()
                self._adopt_grown_orphans()
            except Exception:
                logger.exception("summary sweeper failed")

    def _orphan_wait(self, entry: OutboxEntry, now: datetime) -> float | None:
        """Seconds until ``entry`` is an orphan (<= 0: it is one); None unless it is open and
        was written before this pipeline was created (a later one belongs to a live process)."""
        written = parse_time(entry.created_at)
        if not entry.open or written >= self._created_at:
            return None
        return self.orphan_after_seconds - (now - written).total_seconds()

    def _track_young_locked(self, waits: dict[Ref, float]) -> None:
        """Look again at these open entries once old enough (the sweeper), rather than leaving
        them to a later process start: their process may be dead."""
        for ref, wait in waits.items():
            self._young[ref] = time.monotonic() + wait
        if waits:
            self._wake.set()

    def _adopt_grown_orphans(self) -> None:
        """Adopt the open entries ``replay_pending`` found too young once they are old enough
        (unchanged for ``orphan_after_seconds``: a newer version is waited for in turn)."""
        with self._lock:
            now = time.monotonic()
            due = [ref for ref, at in self._young.items() if at <= now]
            for ref in due:
                del self._young[ref]
        for ref in due:
            try:
                entry = self.outbox.get(ref[1], ref[0])
            except Exception as exc:  # noqa: BLE001 - the entry stays for a later replay
                logger.warning("open outbox entry not read for adoption (%s)", error_reason(exc))
                continue
            wait = None if entry is None else self._orphan_wait(entry, datetime.now(timezone.utc))
            with self._lock:
                if wait is None or self._closed.is_set() or ref in self._inflight:
                    continue
                if wait > 0:
                    self._track_young_locked({ref: wait})
                    continue
                self._adopted.add(ref)
                with telemetry.within(telemetry.NO_CAUSE):  # another process's: no request of ours caused it
                    self._schedule_locked(ref)
                self.metrics["replayed"] += 1
                self.metrics["closed_at_replay"] += 1
            logger.info("adopting a conversation left open by a previous process")

    def _schedule_locked(self, ref: Ref) -> None:
        if ref in self._inflight:
            self._inflight[ref] = True  # the running task re-reads the newer entry
            self._rerun_causes[ref] = telemetry.cause()  # if it finishes first, the re-run links here
            return
        self._waiting.pop(ref, None)
        self._rechecks.pop(ref, None)
        self._causes[ref] = telemetry.cause()
        if ref not in self._tokens:
            self._tokens[ref] = self._task_started(ref[1])
        try:
            future = self._executor.submit(self._traced_run(ref))
        except RuntimeError:  # executor shut down: the entry stays in the outbox
            self._task_ended(self._tokens.pop(ref))
            logger.warning("summary pipeline is shut down; entry left in the outbox")
            return
        self._inflight[ref] = False
        self._futures.add(future)
        future.add_done_callback(lambda f: self._finished(f, ref))

    def _finished(self, future: Future[_Outcome], ref: Ref) -> None:
        crashed = not future.cancelled() and future.exception() is not None
        if crashed:
            logger.error("summary task crashed; entry left in the outbox", exc_info=future.exception())
        outcome = _Outcome.FAILED if crashed or future.cancelled() else future.result()
        ended: list[Any] = []
        with self._lock:
            rerun = self._inflight.pop(ref, False)  # ended again after the task's last look at it
            cause = self._rerun_causes.pop(ref, telemetry.NO_CAUSE)  # not this worker thread's context
            released = self._note_failure_locked() if crashed else []
            if outcome is _Outcome.STORED:
                self._resume_busy_locked()
            given_up = crashed and self._crash_round_locked(ref)
            if outcome is not _Outcome.FAILED or future.cancelled() or self._closed.is_set() or given_up:
                self._rounds.pop(ref, None)
                self._first_failure.pop(ref, None)
                if outcome is _Outcome.ELSEWHERE and not self._closed.is_set():
                    # its claimant may die before storing it (a SIGKILL leaves its S3 lease):
                    # looked at again, not busy meanwhile, once that claim can have expired
                    self._rechecks[ref] = time.monotonic() + self.claim_ttl_seconds
                    self._wake.set()
                else:
                    self._adopted.discard(ref)
                    self._causes.pop(ref, None)
                if rerun and outcome is not _Outcome.FAILED and not self._closed.is_set():
                    with telemetry.within(cause):
                        self._schedule_locked(ref)  # that newer entry is summarized too (same busy task)
                elif ref in self._tokens:
                    ended.append(self._tokens.pop(ref))
                    if not self._tokens:  # nothing left to do: failures count afresh
                        self._resume_busy_locked()
            elif rerun and not crashed:  # a newer transcript (or another look) was asked for: read it now
                with telemetry.within(cause):
                    self._schedule_locked(ref)
            else:  # exhausted or crashed: keep it pending (and the app busy) until a re-sweep
                rounds = self._rounds.setdefault(ref, 1)
                delay = self.retry.sweep_delay(rounds)
                first = self._first_failure.get(ref)
                if first is not None:  # not after the time bound: its last attempt, then a dead letter
                    delay = max(0.0, min(delay, first + self.retry.max_busy_seconds - time.monotonic()))
                self._waiting[ref] = time.monotonic() + delay
                self._wake.set()
                logger.warning("summary kept in the outbox; retry round %d in %.0f s", rounds + 1, delay)
        self._release(released)
        for token in ended:
            self._task_ended(token)
        with self._lock:  # last: ``wait`` returns once the hooks have run
            self._futures.discard(future)

    def _crash_round_locked(self, ref: Ref) -> bool:
        """Count a crashed round (e.g. the outbox unreadable: ``_failed`` never ran); True once
        the retry bounds are reached: the entry stays in the outbox for a later replay, and
        this process stops being busy with it."""
        now = time.monotonic()
        rounds = self._rounds[ref] = self._rounds.get(ref, 0) + 1
        first = self._first_failure.setdefault(ref, now)
        if rounds < self.retry.max_rounds and now - first < self.retry.max_busy_seconds:
            return False
        self.metrics["left_in_outbox"] += 1
        logger.error("summary task crashed %d time(s); entry left in the outbox for a later replay", rounds)
        return True

    # -- one entry ----------------------------------------------------------------------------

    def _traced_run(self, ref: Ref) -> Callable[[], _Outcome]:
        """``_run(ref)`` under the ``memory.summary`` background span, caused by the current span
        (outcome ``dead_lettered``, ``kept`` while the entry waits for a re-sweep, ``elsewhere``
        when another process holds its claim, else ``done``)."""
        outcomes: list[_Outcome] = []
        named = {_Outcome.DEAD: "dead_lettered", _Outcome.ELSEWHERE: "elsewhere"}

        def work(entry_id: str) -> bool | str:
            outcomes.append(self._run(ref))
            return named.get(outcomes[-1], outcomes[-1] is not _Outcome.FAILED)

        traced = telemetry.in_background("memory.summary", work)  # captures the current span now

        def run() -> _Outcome:
            traced(ref[1])
            return outcomes[-1]

        return run

    def _run(self, ref: Ref) -> _Outcome:
        """Claim, summarize, store and remove one entry (see the module docstring)."""
        tenant_id, entry_id = ref
        claim = self.outbox.claim(entry_id, tenant_id, ttl_seconds=self.claim_ttl_seconds)
        if claim is None:
            self._count("claimed_elsewhere")
            return _Outcome.ELSEWHERE
        left = _Outcome.GONE  # the entry vanished or is live: STORED once this task stored a version
        try:
            while not self._stopping.is_set():
                entry = self.outbox.get(entry_id, tenant_id)
                with self._lock:
                    adopted = ref in self._adopted
                if entry is None or (entry.open and not adopted):
                    return left  # stored by someone else, or a live conversation's checkpoint
                if self._erased_now(entry):
                    self._drop_erased(entry)
                    return _Outcome.GONE
                error = self._process_with_retries(entry)
                # a forget ran while we stored: undo, even after a failure (the units may be in
                # the index: a failed DeleteVectors of stale keys comes after the put)
                if self._erased_now(entry):
                    self._unstore(entry)
                    self._drop_erased(entry)
                    return _Outcome.GONE
                if error is not None:
                    return self._failed(ref, entry, error)
                with self._stripe(ref):
                    with self._lock:
                        rerun = self._inflight.get(ref, False)
                        self._inflight[ref] = False
                    # remove only the version summarized: another process may have written a newer
                    # one (an adopted entry's process living on; the conversation going on elsewhere)
                    if not rerun and (self.outbox.swap(entry, None) or self.outbox.get(entry_id, tenant_id) is None):
                        return _Outcome.STORED
                    left = _Outcome.STORED  # this version's summary is in the index whatever follows
                # a newer transcript arrived while we worked: summarize it too
            return _Outcome.FAILED
        finally:
            self.outbox.release(claim)

    def _failed(self, ref: Ref, entry: OutboxEntry, error: Exception) -> _Outcome:
        reason = error_reason(error)
        now = time.monotonic()
        with self._lock:
            rounds = self._rounds[ref] = self._rounds.get(ref, 0) + 1
            first = self._first_failure.setdefault(ref, now)
        permanent = isinstance(error, PERMANENT_ERRORS)
        if not (permanent or rounds >= self.retry.max_rounds or now - first >= self.retry.max_busy_seconds):
            return _Outcome.FAILED
        with self._stripe(ref):
            with self._lock:
                if self._inflight.get(ref):
                    return _Outcome.FAILED  # a newer transcript replaced this one: try it first
            if not self.outbox.dead_letter(entry, reason):
                self._count("superseded_dead_letter")
                return _Outcome.GONE  # a newer version (its process lived on) is pending: its own
            # checked after the write: a forget that ran meanwhile may have listed the dead
            # letters before this one existed, so its marker is honoured here
            if self._erased_now(entry):
                self.outbox.purge(entry.entry_id, entry.tenant_id)
                self._drop_erased(entry)
                return _Outcome.GONE
            with self._lock:  # under the stripe: a newer version written next purges the letter
                self._dead[ref] = True
        self._count("dead_lettered")
        self._count(f"dead_lettered_{type(error).__name__}")
        telemetry.record_error(telemetry.current_span(), error)  # the memory.summary root: failed
        logger.error(
            "summary dead-lettered after %d round(s) (%s): entry %s; see `python -m scripts outbox list`",
            rounds,
            reason,
            entry.entry_id,
        )
        return _Outcome.DEAD

    def _process_with_retries(self, entry: OutboxEntry) -> Exception | None:
        error: Exception | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                self._process(entry)
                return None
            except Exception as exc:
                error = exc
                self._count("failed_attempts")
                logger.warning(
                    "summary attempt %d/%d failed for agent=%s: %s",
                    attempt,
                    self.retry.max_attempts,
                    entry.agent_name,
                    error_reason(exc),
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )
                entry = self._record_attempt(entry)
                with self._lock:  # the time bound counts from the first failed attempt
                    first = self._first_failure.setdefault(_ref(entry), time.monotonic())
                    released = self._note_failure_locked()
                self._release(released)
                if isinstance(exc, PERMANENT_ERRORS) or time.monotonic() - first >= self.retry.max_busy_seconds:
                    break
                if attempt == self.retry.max_attempts or self._stopping.wait(self.retry.delay(attempt)):
                    break
        self._count("exhausted")
        logger.error("summary attempts exhausted (entry %s); kept in the outbox", entry.entry_id)
        return error

    def _process(self, entry: OutboxEntry) -> None:
        telemetry.annotate(telemetry.current_span(), _outbox_attributes(entry, open=entry.open))
        summary, facts = self.summarizer.digest(entry.transcript)
        if not summary.strip():
            self._count("skipped_empty")
            logger.info("conversation had nothing to remember; no summary stored")
            return
        store_conversation(self.store, entry, summary, facts)
        self._count("stored")

    def _unstore(self, entry: OutboxEntry) -> None:
        # its own units only: a later conversation of the same session is not erased
        unstore_conversation(self.store, entry)
        self._count("erased_after_store")
        logger.info("an erasure arrived while storing: the conversation's memories deleted again")

    def _count(self, name: str) -> None:
        telemetry.summary_counted(name)
        with self._lock:
            self.metrics[name] += 1

    def _record_attempt(self, entry: OutboxEntry) -> OutboxEntry:
        """Count a failed attempt in the pending entry; returns the entry as now written.

        One read: the swap's compare-and-set, which writes nothing if the entry is gone
        (forgotten) or was replaced by a newer version meanwhile (``entry`` is returned then).
        """
        ref = _ref(entry)
        with self._stripe(ref):
            with self._lock:
                if self._inflight.get(ref):
                    return entry  # a newer entry replaced this one; keep it as written
            counted = dataclasses.replace(entry, attempts=entry.attempts + 1)
            return counted if self.outbox.swap(entry, counted) else entry

    def _supersede_dead_letter(self, ref: Ref) -> None:
        """Purge the dead letter this process made of ``ref`` once a newer version (a longer
        transcript under the same key) is durable: `outbox retry` would otherwise put the older
        transcript back over it, or store it over the newer one's units."""
        with self._lock:
            if not self._dead.pop(ref, False):
                return
        try:
            self.outbox.purge(ref[1], ref[0])
        except Exception as exc:  # noqa: BLE001 - the newer version is durable: tried again at its next write
            with self._lock:
                self._dead[ref] = True
            logger.warning("superseded dead letter not purged (%s)", error_reason(exc))

    def _stripe(self, ref: Ref) -> threading.Lock:
        return self._stripes[hash(ref) % _STRIPES]

    def _task_started(self, entry_id: str) -> Any:
        telemetry.outbox_backlog(+1)
        return _NOT_BUSY if self._busy_released else self._busy(_task_name(entry_id))

    def _task_ended(self, token: Any) -> None:
        telemetry.outbox_backlog(-1)
        if token is not _NOT_BUSY:
            self._idle(token)

    def _note_failure_locked(self) -> list[Any]:
        """Count a failure towards the pipeline's time bound; once summaries have failed for
        ``max_busy_seconds`` with none stored since, the busy tokens to end (the entries keep
        going, not busy: a backlog replayed in an outage ends each entry's bound in turn)."""
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if self._busy_released or now - self._failing_since < self.retry.max_busy_seconds:
            return []
        self._busy_released = True
        tokens = [token for token in self._tokens.values() if token is not _NOT_BUSY]
        self._tokens = dict.fromkeys(self._tokens, _NOT_BUSY)
        self.metrics["busy_released"] += 1
        logger.warning(
            "summaries have failed for %.0f s with none stored: the app stops reporting busy for them "
            "(%d entries go on in the background, each kept in the outbox until stored or dead-lettered)",
            now - self._failing_since,
            len(self._tokens),
        )
        return tokens

    def _resume_busy_locked(self) -> None:
        """A summary was stored (or none is left): failures count afresh, and the entries
        scheduled are busy again."""
        self._failing_since = None
        if not self._busy_released:
            return
        self._busy_released = False
        for ref, token in self._tokens.items():
            if token is _NOT_BUSY:
                self._tokens[ref] = self._busy(_task_name(ref[1]))
        if self._tokens:  # (none left: the backlog ended, nothing was stored)
            logger.info("a summary was stored: the app reports its %d pending summaries as busy again", len(self._tokens))

    def _release(self, tokens: list[Any]) -> None:
        for token in tokens:
            self._idle(token)

    def _busy(self, name: str) -> Any:
        if self._on_task_start is None:
            return None
        try:
            return self._on_task_start(name)
        except Exception:
            logger.warning("on_task_start hook failed", exc_info=True)
            return None

    def _idle(self, token: Any) -> None:
        if self._on_task_end is None:
            return
        try:
            self._on_task_end(token)
        except Exception:
            logger.warning("on_task_end hook failed", exc_info=True)


_at_exit: "weakref.WeakSet[SummaryPipeline]" = weakref.WeakSet()  # live pipelines, flushed at exit
_at_exit_lock = threading.Lock()
_at_exit_registered = False


def _flushed_at_exit(pipeline: SummaryPipeline) -> None:
    """Have ``pipeline``'s queued checkpoints written at the interpreter's exit while it lives
    (one exit handler for every pipeline, registered with the first)."""
    global _at_exit_registered
    with _at_exit_lock:
        if not _at_exit_registered:
            atexit.register(_flush_at_exit)
            _at_exit_registered = True
        _at_exit.add(pipeline)


def _flush_at_exit() -> None:
    """Write what every live, not shut down pipeline still has queued (at the interpreter's exit):
    all their writers start at once, then each is waited for within one ``EXIT_FLUSH_SECONDS``,
    so pipelines whose outbox refuses writes do not add up their waits."""
    with _at_exit_lock:
        pipelines = [pipeline for pipeline in _at_exit if not pipeline._closed.is_set()]
    deadline = time.monotonic() + EXIT_FLUSH_SECONDS
    for pipeline in pipelines:
        pipeline._hurry.set()  # its writer skips its coalescing wait; ``flush`` clears it again
        pipeline._writer_wake.set()
    unwritten = sum(not pipeline.flush(timeout=max(0.0, deadline - time.monotonic())) for pipeline in pipelines)
    if unwritten:
        logger.warning(
            "exit: queued checkpoints of %d pipeline(s) not written within %.0f s", unwritten, EXIT_FLUSH_SECONDS
        )


def _check_storable(entry: OutboxEntry) -> None:
    check_storable_identity(entry.user_id, entry.agent_name, user_arg="entry.user_id", agent_arg="entry.agent_name")


def _ref(entry: OutboxEntry) -> Ref:
    return (entry.tenant_id, entry.entry_id)


def _task_name(entry_id: str) -> str:
    return f"memory-summary-{entry_id[:12]}"


def _outbox_attributes(entry: OutboxEntry, *, open: bool) -> dict[str, Any]:
    return {
        **telemetry.identity_attributes(entry.tenant_id, entry.user_id, entry.agent_name, entry.conversation_id),
        "memory.outbox.entry.open": open,
        "memory.transcript.turns": len(entry.transcript),
        "memory.attempts": entry.attempts,
    }
