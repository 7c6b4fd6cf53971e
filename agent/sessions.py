"""A bounded registry of live conversations: one orchestrator per session, one request at a time.

Sessions idle for longer than the idle timeout (found by the reaper's ``reap`` or the next
request, whichever comes first), and the least recently used ones beyond ``max_sessions``, are
removed and *ended* (their conversation is handed to the summary pipeline), so eviction never
loses a conversation; ``end`` of a session whose id had idled out waits for that earlier end
(for at most ``EARLIER_END_WAIT_SECONDS``: past it nothing is ended and the request fails). A
session with a request in flight is not idle: it is kept apart from the idle ones until the
request ends, so neither the idle timer nor the size bound ends a conversation during a long
turn (its next turn would otherwise start a fresh conversation); its idle clock starts when the
request ends. Ending runs on a small worker pool (at shutdown, after the session's in-flight
request has finished, or, once ``close``'s ``turn_timeout`` has passed, not at all: that
session is abandoned and logged, its answered turns being in its last checkpoint, which a later
process adopts), each end the root of its own trace, never part of the request that happened to
evict it. The conversation id is the session id; a session id reused after its session ended
gets a fresh conversation object, whose own start marker keeps its summary apart from the
earlier one's.

An idle or evicted session whose end fails (the outbox cannot be written) is kept and its end
tried again with backoff (``EndRetry``), driven by ``reap``, until it succeeds or
``EndRetry.give_up_after_seconds`` have passed since its first failure (then it is dropped and
logged; its last checkpoint waits for a later process's replay). At most ``max_sessions`` such
ends are kept (each holds its conversation): one more failing then is dropped so at once. Meanwhile, for at most
``EndRetry.busy_seconds``, it is a busy task (``on_task_start``/``on_task_end``: AgentCore keeps
a HealthyBusy session's microVM, which the runtime's idle timeout would otherwise end). It is
logged once when its end first fails, not for every retry. ``end`` of the same session id tries such an earlier end
again at once and fails (nothing ended) if it still fails; the shutdown tries each once more,
within its budget.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from cachetools import TTLCache

from agent.errors import Forbidden, SessionBusy, Unavailable
from memory import telemetry
from memory.errors import error_reason

logger = logging.getLogger(__name__)

#: How long ``end`` waits for the end of an earlier conversation under its session id (one that
#: idled out just before the request): about one outbox write with every retry of its clients,
#: or a wait behind a reap's other ends. Past it the request fails and nothing is ended.
EARLIER_END_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class EndRetry:
    """Backoff for ending again an idle or evicted session whose end failed.

    Attributes:
        base_seconds: Wait after the first failure (retries run at the next ``reap`` past it).
        max_delay_seconds: Longest wait between two attempts (doubling up to it).
        give_up_after_seconds: Time since the first failure after which the session is dropped.
        busy_seconds: Time since the first failure during which its retries are a busy task.
    """

    base_seconds: float = 5.0
    max_delay_seconds: float = 60.0
    give_up_after_seconds: float = 3600.0
    busy_seconds: float = 300.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after failed attempt number ``failures`` (1-based)."""
        return min(self.max_delay_seconds, self.base_seconds * 2 ** (failures - 1))


class Conversation(Protocol):
    """What the registry needs from the per-session object."""

    def end_conversation(self) -> None:
        """Hand the conversation to the summary pipeline (idempotent)."""


C = TypeVar("C", bound=Conversation)
Owner = tuple[str, str]  # (tenant_id, user_id)


@dataclass(eq=False)
class Session(Generic[C]):
    """One live session: its owner, its conversation (and that conversation's id), its request lock."""

    session_id: str
    owner: Owner
    conversation: C
    conversation_id: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


class _DroppingTTLCache(TTLCache):
    """A TTLCache that remembers what it drops (expired or evicted) instead of forgetting it."""

    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float]) -> None:
        super().__init__(maxsize, ttl, timer=timer)
        self.dropped: list[Any] = []

    def expire(self, time: float | None = None) -> list[tuple[Any, Any]]:
        expired = list(super().expire(time))
        self.dropped.extend(value for _, value in expired)
        return expired

    def popitem(self) -> tuple[Any, Any]:
        key, value = super().popitem()
        self.dropped.append(value)
        return key, value


class SessionRegistry(Generic[C]):
    """Live sessions keyed by session id, bounded by count and idle time."""

    def __init__(
        self,
        factory: Callable[[str, Owner], C],  # (conversation_id, owner) -> conversation
        *,
        max_sessions: int,
        idle_timeout_seconds: float,
        timer: Callable[[], float] = time.monotonic,
        end_workers: int = 2,
        end_retry: EndRetry | None = None,
        on_task_start: Callable[[str], Any] | None = None,
        on_task_end: Callable[[Any], None] | None = None,
    ) -> None:
        self._factory = factory
        self._timer = timer
        self._max_failed = max_sessions  # failed ends kept for a retry, each with its conversation
        self.end_retry = end_retry or EndRetry()
        self._on_task_start = on_task_start
        self._on_task_end = on_task_end
        self._cache: _DroppingTTLCache = _DroppingTTLCache(max_sessions, idle_timeout_seconds, timer)
        self._busy: dict[str, Session[C]] = {}  # sessions with a request in flight, out of the cache
        # reentrant: ends are scheduled under it (``_end_later``), whose bookkeeping takes it too
        self._lock = threading.RLock()
        self._closing = False
        self._enders = ThreadPoolExecutor(max_workers=end_workers, thread_name_prefix="session-end")
        self._pending: set[Future[None]] = set()
        self._ending: dict[str, list[tuple[Session[C], Future[None]]]] = {}  # session id -> ends not done
        self._turn_deadline: float | None = None  # closing: no wait for a request past it
        self._abandoned: list[str] = []  # sessions whose request outlived the deadline
        # end failed -> (failures, first failure, busy-task token or None once no longer busy)
        self._failed: dict[Session[C], tuple[int, float, Any]] = {}
        self._retry_at: dict[Session[C], float] = {}  # of those, waiting for a retry -> when it is due

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache) + len(self._busy)

    @contextmanager
    def open(self, session_id: str, owner: Owner) -> Iterator[Session[C]]:
        """``acquire`` + ``release`` around one request."""
        session = self.acquire(session_id, owner)
        try:
            yield session
        finally:
            self.release(session)

    def acquire(self, session_id: str, owner: Owner) -> Session[C]:
        """Hold the session for one request, creating it (and its conversation) on first use.

        Raises Forbidden if the session belongs to another identity, SessionBusy if another
        request of the session is running, Unavailable once the registry is closing. Every
        successful ``acquire`` must be followed by exactly one ``release``.
        """
        with self._lock, self._cache.timer:  # one instant: the session cannot expire in between
            if self._closing:
                raise Unavailable("the service is shutting down; retry shortly")
            self._cache.expire()  # idle ones, this one maybe, end now rather than at the next reap
            self._end_later(self._take_dropped())
            session = self._busy.get(session_id) or self._cache.get(session_id)
            if session is None:
                session = self._new_session(session_id, owner)
            elif session.owner != owner:
                raise Forbidden("this session belongs to another identity")
            if session_id in self._busy or not session.lock.acquire(blocking=False):
                raise SessionBusy("another request of this session is still running")
            self._cache.pop(session_id, None)  # in flight: neither idle nor evictable
            self._busy[session_id] = session
        return session

    def release(self, session: Session[C]) -> None:
        """End a request: restart the session's idle clock and let the next request in."""
        with self._lock:
            if self._busy.get(session.session_id) is session:
                del self._busy[session.session_id]
            if not session.closed:
                self._cache[session.session_id] = session  # its idle clock starts now
            session.lock.release()
            self._end_later(self._take_dropped())

    def end(self, session: Session[C]) -> None:
        """End a session now, from inside ``open`` (the caller holds its lock), once the ends of
        earlier sessions under its id (one that idled out just before this request) are done.

        Raises:
            Unavailable: Those earlier ends are not done within ``EARLIER_END_WAIT_SECONDS``,
                or one failed (one waiting for its retry is tried again first): nothing is ended,
                the session stays open (a retry waits for them again); answered once they are
                done, ``end_session`` means every turn of the session is durable.
            Exception: What ``end_conversation`` raised (e.g. the outbox could not be written);
                the session then stays open, so the caller can report the failure and retry later.
        """
        with self._lock:
            # an earlier end waiting for its retry: tried again now, the client asks for the end
            self._end_later(self._take_retries(lambda s: s.session_id == session.session_id))
            earlier = [future for ended, future in self._ending.get(session.session_id, ()) if ended is not session]
        # ``wait``, not ``Future.result``: whose timeout is not the builtin TimeoutError before 3.11
        _, running = wait(earlier, timeout=EARLIER_END_WAIT_SECONDS)  # they never raise: ``_end_now`` logs
        if running:
            logger.warning(
                "end_session: the end of the session's earlier conversation is still running after %.0f s; "
                "session not ended (the client may retry)",
                EARLIER_END_WAIT_SECONDS,
                extra={"session_id": session.session_id},
            )
            raise Unavailable("an earlier conversation of this session is still being recorded; retry shortly")
        with self._lock:  # one failed (again): it waits for its retry, and this end with it
            unrecorded = any(s.session_id == session.session_id and s is not session for s in self._failed)
        if unrecorded:
            raise Unavailable("an earlier conversation of this session could not be recorded yet; retry shortly")
        session.conversation.end_conversation()
        with self._lock:
            session.closed = True  # in flight, so not in the cache: ``release`` leaves it out
        logger.info("session ended", extra={"session_id": session.session_id})

    def reap(self) -> int:
        """End every session idle for longer than the timeout, and try again the failed ends
        whose backoff has elapsed; returns how many idle sessions were scheduled."""
        with self._lock:
            self._cache.expire()
            dropped = self._take_dropped()
            now = self._timer()
            self._end_later(dropped + self._take_retries(lambda s: self._retry_at[s] <= now))
            for session, (failures, first, token) in list(self._failed.items()):
                if token is not None and now - first >= self.end_retry.busy_seconds:
                    self._failed[session] = (failures, first, None)
                    self._task_ended(token)  # retried on, no longer keeping the app busy
        return len(dropped)

    def begin_close(self, turn_timeout: float | None = None) -> None:
        """Refuse new requests and schedule the end of every open session; returns at once.

        A session whose request is still running ``turn_timeout`` seconds from now (a turn that
        never returns) is not waited for: it is abandoned, unended (and logged by ``close``).
        Only the first call (of this or ``close``) does anything.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if turn_timeout is not None:
                self._turn_deadline = time.monotonic() + turn_timeout
            self._cache.expire()
            sessions = [*self._cache.values(), *self._busy.values()]
            self._cache.clear()
            self._busy.clear()
            for session in sessions:
                session.closed = True
            sessions += self._take_dropped() + self._take_retries(lambda s: True)  # the last try of those
            self._end_later(sessions)

    def close(self, timeout: float | None = None, *, turn_timeout: float | None = None) -> list[str]:
        """``begin_close`` (unless it ran), then wait (up to ``timeout``) for the sessions' ends.

        Returns the ids of the sessions abandoned (their request outlived ``turn_timeout``), and
        logs them.
        """
        self.begin_close(turn_timeout)
        with self._lock:
            pending = list(self._pending)
        deadline = None if timeout is None else time.monotonic() + timeout
        for future in pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.result(timeout=remaining)
            except Exception:  # noqa: BLE001 - already logged by _end_now; keep ending the others
                logger.warning("a session did not end before the shutdown deadline")
        # Nothing is scheduled after this (reaps and evictions schedule their ends under the lock
        # that took the sessions out): the pool is left as it is, idle.
        with self._lock:
            abandoned = list(self._abandoned)
        if abandoned:
            logger.warning(
                "shutdown: %d session(s) not ended, their request still running at the turn deadline: %s "
                "(each one's answered turns reach the outbox as its checkpoint, which a later start adopts)",
                len(abandoned),
                ", ".join(abandoned),
                extra={"operation": "shutdown", "abandoned": len(abandoned)},
            )
        return abandoned

    # --- internals

    def _new_session(self, session_id: str, owner: Owner) -> Session[C]:
        return Session(session_id, owner, self._factory(session_id, owner), session_id)

    def _task_ended(self, token: Any) -> None:
        if token is not None and self._on_task_end is not None:
            self._on_task_end(token)

    def _take_retries(self, chosen: Callable[[Session[C]], bool]) -> list[Session[C]]:
        """Under the lock: the sessions waiting for a retry of their end that are ``chosen``."""
        taken = [session for session in self._retry_at if chosen(session)]
        for session in taken:
            del self._retry_at[session]
        return taken

    def _take_dropped(self) -> list[Session[C]]:
        dropped, self._cache.dropped = self._cache.dropped, []
        for session in dropped:
            session.closed = True
        return dropped

    def _end_later(self, sessions: list[Session[C]]) -> None:
        """Schedule the ends of ``sessions``, called under the lock that took them out of the
        registry: ``close`` cannot run in between and miss them (the process exits after it)."""
        for session in sessions:
            # not in the context of the request that evicted it (the threading instrumentation
            # runs pool work in the submitter's): that is another session's, maybe another tenant's
            with telemetry.within(telemetry.NO_CAUSE):
                future = self._enders.submit(self._end_when_free, session)
            with self._lock:
                self._pending.add(future)
                self._ending.setdefault(session.session_id, []).append((session, future))
            future.add_done_callback(lambda done, session_id=session.session_id: self._forget_future(done, session_id))

    def _forget_future(self, future: Future[None], session_id: str) -> None:
        with self._lock:
            self._pending.discard(future)
            left = [(s, f) for s, f in self._ending.get(session_id, ()) if f is not future]
            if left:
                self._ending[session_id] = left
            else:
                self._ending.pop(session_id, None)

    def _end_when_free(self, session: Session[C]) -> None:
        with self._lock:
            deadline = self._turn_deadline
        # wait for the session's in-flight request, if any (closing: until the deadline)
        if not session.lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
            with self._lock:
                self._abandoned.append(session.session_id)
            return
        try:
            self._end_now(session)
        finally:
            session.lock.release()

    def _end_now(self, session: Session[C]) -> None:
        try:
            session.conversation.end_conversation()
        except Exception as exc:  # noqa: BLE001 - kept for a retry (or logged and dropped)
            self._end_failed(session, exc)
            return
        with self._lock:
            failures, _, token = self._failed.pop(session, (0, 0.0, None))
            self._task_ended(token)
        logger.info("session ended%s", f" after {failures} failed attempt(s)" if failures else "",
                    extra={"session_id": session.session_id})

    def _end_failed(self, session: Session[C], exc: Exception) -> None:
        """Keep ``session`` for a retry of its end, unless closing, past the retry bound or with
        ``max_sessions`` failed ends kept already; logged at its first failure and when given
        up, not at every retry."""
        now = self._timer()
        with self._lock:
            failures, first, token = self._failed.get(session, (0, now, None))
            failures += 1
            full = session not in self._failed and len(self._failed) >= self._max_failed
            give_up = self._closing or full or now - first >= self.end_retry.give_up_after_seconds
            if give_up:
                self._failed.pop(session, None)
                self._task_ended(token)
            else:
                if failures == 1 and self._on_task_start is not None and self.end_retry.busy_seconds > 0:
                    token = self._on_task_start("session-end-retry")
                self._failed[session] = (failures, first, token)
                self._retry_at[session] = now + self.end_retry.delay(failures)
        extra = {"session_id": session.session_id}
        if failures == 1:
            logger.warning("ending session failed (%s); %s", error_reason(exc),
                           "not retried: its last checkpoint waits for a later start" if give_up
                           else f"retrying with backoff for up to {self.end_retry.give_up_after_seconds:.0f} s",
                           extra=extra, exc_info=exc)
        elif give_up:
            logger.warning("ending session failed %d times (%s); given up: its last checkpoint waits for a later start",
                           failures, error_reason(exc), extra=extra)
