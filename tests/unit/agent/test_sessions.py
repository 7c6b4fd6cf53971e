"""The session registry: ownership, one request at a time, idle and size eviction end conversations."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time

import pytest

from agent.errors import Forbidden, SessionBusy, Unavailable
from agent import sessions
from agent.sessions import SessionRegistry

ALICE = ("tenant-a", "alice")
BOB = ("tenant-a", "bob")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Convo:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.ended = 0
        self.done = threading.Event()

    def end_conversation(self) -> None:
        self.ended += 1
        self.done.set()


def make(max_sessions: int = 4, idle: float = 10.0):
    clock = FakeClock()
    made: dict[str, Convo] = {}

    def factory(session_id: str, owner: tuple[str, str]) -> Convo:
        made[session_id] = Convo(session_id)
        return made[session_id]

    registry = SessionRegistry(factory, max_sessions=max_sessions, idle_timeout_seconds=idle, timer=clock)
    return registry, clock, made


def test_same_session_reuses_its_conversation() -> None:
    registry, _, made = make()
    with registry.open("s1", ALICE) as first:
        pass
    with registry.open("s1", ALICE) as second:
        pass
    assert first is second and list(made) == ["s1"]


def test_another_identity_cannot_use_an_open_session() -> None:
    registry, _, _ = make()
    with registry.open("s1", ALICE):
        pass
    with pytest.raises(Forbidden):
        with registry.open("s1", BOB):
            pass
    with pytest.raises(Forbidden):
        with registry.open("s1", ("tenant-b", "alice")):
            pass


def test_concurrent_request_on_same_session_is_refused() -> None:
    registry, _, _ = make()
    with registry.open("s1", ALICE):
        with pytest.raises(SessionBusy):
            with registry.open("s1", ALICE):
                pass
        with registry.open("s2", ALICE):  # other sessions are not blocked
            pass
    with registry.open("s1", ALICE):  # free again afterwards
        pass


def test_idle_sessions_are_ended_by_reap() -> None:
    registry, clock, made = make(idle=10.0)
    with registry.open("s1", ALICE):
        pass
    clock.now = 5.0
    with registry.open("s2", ALICE):
        pass
    clock.now = 11.0
    assert registry.reap() == 1
    assert made["s1"].done.wait(30) and made["s1"].ended == 1
    assert made["s2"].ended == 0 and len(registry) == 1


def test_use_restarts_the_idle_clock() -> None:
    registry, clock, made = make(idle=10.0)
    with registry.open("s1", ALICE):
        pass
    clock.now = 8.0
    with registry.open("s1", ALICE):
        pass
    clock.now = 16.0
    assert registry.reap() == 0 and made["s1"].ended == 0


def test_size_eviction_ends_least_recently_used() -> None:
    registry, _, made = make(max_sessions=2)
    for sid in ("s1", "s2", "s1", "s3"):
        with registry.open(sid, ALICE):
            pass
    assert made["s2"].done.wait(30) and made["s2"].ended == 1
    assert made["s1"].ended == 0 and made["s3"].ended == 0


def test_a_turn_longer_than_the_idle_timeout_keeps_its_conversation() -> None:
    registry, clock, made = make(idle=10.0)
    with registry.open("s1", ALICE) as first:
        clock.now = 20.0  # the turn outlasts the idle timeout: the session is busy, not idle
        assert registry.reap() == 0
        with registry.open("s2", ALICE):  # other sessions' requests expire nothing in flight either
            pass
        with pytest.raises(SessionBusy):  # a second request of s1 still waits its turn
            with registry.open("s1", ALICE):
                pass
    with registry.open("s1", ALICE) as second:  # the next turn continues the same conversation
        pass
    assert second is first and list(made) == ["s1", "s2"] and made["s1"].ended == 0
    clock.now = 29.0
    assert registry.reap() == 0  # idle since its last request ended (t=20), not since it began
    clock.now = 31.0
    assert registry.reap() == 2
    assert made["s1"].done.wait(30) and made["s1"].ended == 1


def test_the_size_bound_never_evicts_a_session_in_flight() -> None:
    registry, _, made = make(max_sessions=1)
    with registry.open("s1", ALICE) as first:
        with registry.open("s2", ALICE):
            pass
        with registry.open("s3", ALICE):  # s2, idle, is the one evicted
            pass
        assert made["s2"].done.wait(30) and made["s1"].ended == 0
    with registry.open("s1", ALICE) as again:
        pass
    assert again is first and made["s1"].ended == 0


def test_close_waits_for_the_in_flight_request() -> None:
    registry, _, made = make()
    entered, closed = threading.Event(), threading.Event()
    seen: list[tuple[bool, int]] = []

    def request() -> None:
        with registry.open("s1", ALICE):
            entered.set()
            seen.append((closed.wait(0.2), made["s1"].ended))  # close still waiting; not ended yet

    worker = threading.Thread(target=request)
    worker.start()
    assert entered.wait(30)
    registry.close(timeout=5)
    closed.set()
    worker.join(5)
    assert seen == [(False, 0)] and made["s1"].ended == 1 and len(registry) == 0


def test_explicit_end_removes_the_session() -> None:
    registry, _, made = make()
    with registry.open("s1", ALICE) as session:
        registry.end(session)
    assert made["s1"].ended == 1 and len(registry) == 0


def test_failed_explicit_end_raises_and_keeps_the_session_open() -> None:
    registry, _, made = make()
    with registry.open("s1", ALICE) as session:
        made["s1"].end_conversation = lambda: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        with pytest.raises(OSError):
            registry.end(session)
    assert len(registry) == 1 and not session.closed
    with registry.open("s1", ALICE) as again:  # the retry reaches the same conversation
        del made["s1"].end_conversation
        registry.end(again)
    assert again is session and made["s1"].ended == 1 and len(registry) == 0


def test_close_ends_every_open_session_once_and_refuses_new_requests() -> None:
    registry, clock, made = make(idle=10.0)
    for sid in ("s1", "s2", "s3"):
        with registry.open(sid, ALICE):
            pass
    clock.now = 10.5  # s1..s3 expired but not yet reaped: must still be ended
    registry.close(timeout=5)
    assert [c.ended for c in made.values()] == [1, 1, 1]
    with pytest.raises(Unavailable):
        with registry.open("s4", ALICE):
            pass


def test_close_abandons_sessions_whose_request_outlives_the_turn_timeout_and_ends_the_others() -> None:
    """Two requests that never return hold both end workers' first jobs: the idle sessions behind
    them are still ended, and close returns (naming the abandoned ones) instead of waiting."""
    registry, _, made = make()
    hung = [registry.acquire(sid, ALICE) for sid in ("h1", "h2")]  # never released
    for sid in ("s1", "s2", "s3"):
        with registry.open(sid, ALICE):
            pass
    started = time.monotonic()
    abandoned = registry.close(timeout=30, turn_timeout=0.2)
    assert time.monotonic() - started < 10
    assert sorted(abandoned) == ["h1", "h2"] and all(h.lock.locked() for h in hung)
    assert {sid: c.ended for sid, c in made.items()} == {"h1": 0, "h2": 0, "s1": 1, "s2": 1, "s3": 1}


def test_a_session_whose_request_outlives_the_turn_deadline_is_logged_as_not_ended_with_where_its_turns_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The log said "abandoned, their request still running": for a plain (not streamed) request,
    uvicorn cancels it at that same deadline, before ``close`` logs, so it was no longer running,
    and "abandoned" read as a conversation lost. Nothing answered is lost: the session is not
    ended, its answered turns reach the outbox as its checkpoint (the app flushes them next) and
    a later start adopts it. The log now says that."""
    registry, _, _ = make()
    hung = registry.acquire("h1", ALICE)
    with caplog.at_level(logging.WARNING, logger="agent.sessions"):
        assert registry.close(timeout=30, turn_timeout=0.1) == ["h1"]
    registry.release(hung)  # uvicorn cancels the request at the same deadline
    (line,) = [r.getMessage() for r in caplog.records if r.name == "agent.sessions"]
    assert line.startswith("shutdown: 1 session(s) not ended, their request still running at the turn deadline: h1")
    assert "answered turns reach the outbox as its checkpoint, which a later start adopts" in line


def test_end_session_after_the_idle_timeout_but_before_the_reap_waits_for_the_idle_conversations_end() -> None:
    """A session idle past its timeout stays in the registry until the reaper's next round (every
    ``AGENT_REAP_INTERVAL_SECONDS``). An ``end_session`` arriving in between got a fresh, empty
    conversation, ended at once: ``session_ended: true`` was answered while the conversation
    holding the session's turns was not ended at all (until that reap). Its end now starts when
    the request comes, and ``end`` returns once it is done."""
    registry, clock, made = make(idle=10.0)
    with registry.open("s1", ALICE) as idle:
        pass
    old = idle.conversation
    clock.now = 10.5  # expired; the reaper has not run yet
    with registry.open("s1", ALICE) as session:
        assert session is not idle  # the idle conversation is over: a new one
        registry.end(session)
        ended_when_answered = old.ended
    assert ended_when_answered == 1 and session.conversation.ended == 1 and len(registry) == 0


def _expired_with_a_stuck_end() -> tuple[SessionRegistry, threading.Event]:
    """A registry whose session ``s1`` has idled out (expired; the reaper has not run yet) and
    whose conversation's end blocks until the returned event is set (an outbox write stuck)."""
    registry, clock, _ = make(idle=10.0)
    with registry.open("s1", ALICE) as idle:
        pass
    stuck = threading.Event()
    idle.conversation.end_conversation = lambda: stuck.wait(30)  # type: ignore[method-assign]
    clock.now = 10.5
    return registry, stuck


def test_end_session_waits_for_the_idle_conversations_end_only_so_long_then_fails_and_keeps_the_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``end`` waited for the end of the conversation that idled out under its session id with no
    deadline of its own (an outbox write stuck, or queued behind a reap's many ends): the request
    hung. Past its bound it now fails (503: retry end_session) before ending anything, the session
    stays open, and the retry answers once that earlier end is done: nothing is lost."""
    monkeypatch.setattr(sessions, "EARLIER_END_WAIT_SECONDS", 0.2, raising=False)
    registry, stuck = _expired_with_a_stuck_end()
    outcome: list[BaseException | None] = []

    def end_session(session) -> None:
        try:
            registry.end(session)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    with registry.open("s1", ALICE) as session:
        ender = threading.Thread(target=end_session, args=(session,))
        ender.start()
        ender.join(5)
        answered = not ender.is_alive()
        stuck.set()
        ender.join(30)
        assert answered and isinstance(outcome[0], Unavailable), outcome
        assert session.conversation.ended == 0 and not session.closed  # open for the retry
        registry.end(session)  # the retry: that earlier end is done now
    assert session.conversation.ended == 1 and len(registry) == 0


class Py310FutureTimeout(Exception):
    """What ``Future.result(timeout=...)`` raises on Python 3.10 (``requires-python >= 3.10``):
    ``concurrent.futures.TimeoutError``, not yet the builtin ``TimeoutError`` (3.11 made it one)."""


def test_the_bounded_wait_for_an_earlier_end_holds_on_python_3_10_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """``end`` caught the builtin ``TimeoutError`` around ``Future.result``: on 3.10 the timeout
    passed it by, so instead of ``Unavailable`` (logged as such: retry shortly) the request failed
    with a bare ``concurrent.futures.TimeoutError`` out of the registry."""
    result = concurrent.futures.Future.result

    def result_as_on_3_10(self, timeout=None):  # type: ignore[no-untyped-def]
        try:
            return result(self, timeout)
        except TimeoutError:
            raise Py310FutureTimeout() from None

    monkeypatch.setattr(concurrent.futures.Future, "result", result_as_on_3_10)
    monkeypatch.setattr(sessions, "EARLIER_END_WAIT_SECONDS", 0.2)
    registry, stuck = _expired_with_a_stuck_end()
    try:
        with registry.open("s1", ALICE) as session:
            with pytest.raises(Unavailable):
                registry.end(session)
            assert session.conversation.ended == 0 and not session.closed
    finally:
        stuck.set()


def test_reopened_session_gets_a_fresh_conversation_under_the_session_id() -> None:
    registry, _, made = make()
    with registry.open("s1", ALICE) as first:
        conversation = first.conversation
        registry.end(first)
    with registry.open("s1", ALICE) as second:
        pass
    # same conversation id (forget --conversation <session id> finds both); a new conversation
    # object, whose start marker keeps its summary key apart from the first one's
    assert first.conversation_id == second.conversation_id == "s1"
    assert second.conversation is not conversation and conversation.ended == 1 and made["s1"].ended == 0


class SpyLock:
    """Wraps the registry's lock; sets ``contended`` whenever a caller has to wait for it."""

    def __init__(self, inner, contended: threading.Event) -> None:
        self._inner, self._contended = inner, contended

    def __enter__(self) -> "SpyLock":
        if not self._inner.acquire(blocking=False):
            self._contended.set()
            self._inner.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.release()


def test_close_waits_for_the_ends_of_sessions_a_reap_took_just_before_it() -> None:
    """The reaper thread expired idle sessions under the lock and scheduled their ends after
    releasing it. A SIGTERM's close() that ran in between found nothing to wait for and returned:
    the app then exits (``os._exit``) while those ends, its conversations' closed entries, may
    not have been written (only their checkpoints left, summarized once another process adopts
    them). close() now waits for them like for every other end."""
    registry, clock, made = make(idle=10.0)
    with registry.open("s1", ALICE):
        pass
    clock.now = 10.5
    taken, go, settled = threading.Event(), threading.Event(), threading.Event()
    registry._lock = SpyLock(registry._lock, settled)  # type: ignore[assignment]
    submit = registry._enders.submit

    def submit_when_told(*args, **kwargs):
        if not taken.is_set():  # the reap's end: it took s1 out of the registry
            taken.set()
            assert go.wait(30)
        return submit(*args, **kwargs)

    registry._enders.submit = submit_when_told  # type: ignore[method-assign]
    reaper = threading.Thread(target=registry.reap)
    reaper.start()
    assert taken.wait(30)
    ended_when_closed: list[int] = []

    def shut_down() -> None:
        registry.close(timeout=30)
        ended_when_closed.append(made["s1"].ended)
        settled.set()

    closer = threading.Thread(target=shut_down)
    closer.start()
    assert settled.wait(30)  # close() returned, or waits for the registry's lock
    go.set()
    reaper.join(30)
    closer.join(30)
    assert ended_when_closed == [1]


def test_a_session_evicted_by_another_request_ends_outside_that_requests_trace() -> None:
    """The size bound evicts a session when *another* session's request releases it: its end
    (``memory.conversation.end`` and the summary linked to it) runs on the end pool. Strands and
    ``opentelemetry-instrument`` turn on the threading instrumentation, which runs pool work in
    the context of whoever submitted it: the end became a child of the evicting request's trace
    (another user's, maybe another tenant's), and its summary linked into that trace."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    from memory import telemetry
    from tests.support.otel import capture_telemetry

    ended_in: list[trace.SpanContext] = []

    class TracedConvo(Convo):
        def end_conversation(self) -> None:
            ended_in.append(trace.get_current_span().get_span_context())
            super().end_conversation()

    ThreadingInstrumentor().instrument()  # what Strands' tracer does (a no-op if already done)
    with capture_telemetry():
        made: dict[str, Convo] = {}

        def factory(session_id: str, owner: tuple[str, str]) -> Convo:
            made[session_id] = TracedConvo(session_id)
            return made[session_id]

        registry = SessionRegistry(factory, max_sessions=1, idle_timeout_seconds=60)
        with registry.open("s1", ALICE):
            pass
        with telemetry.span("bob's request") as request:
            with registry.open("s2", BOB):
                pass  # released here: s1 is evicted
        assert made["s1"].done.wait(30)
    assert request.get_span_context().is_valid
    assert len(ended_in) == 1 and not ended_in[0].is_valid  # a root of its own, not in bob's trace


class FlakyConvo(Convo):
    """A conversation whose end fails (an outbox refusing writes) ``failures`` times, then works."""

    def __init__(self, session_id: str, failures: int) -> None:
        super().__init__(session_id)
        self.failures = failures
        self.attempts = threading.Semaphore(0)  # one release per attempt, failed or not

    def end_conversation(self) -> None:
        try:
            if self.failures > 0:
                self.failures -= 1
                raise OSError(5, "outbox unavailable")
            super().end_conversation()
        finally:
            self.attempts.release()


class Busy:
    """Records the busy tasks a registry starts and ends (AgentCore's async tasks)."""

    def __init__(self) -> None:
        self.running: set[int] = set()
        self.started = 0

    def start(self, name: str) -> int:
        assert name == "session-end-retry"
        self.started += 1
        self.running.add(self.started)
        return self.started

    def end(self, token: int) -> None:
        self.running.remove(token)


def make_flaky(failures: int, idle: float = 10.0, busy: Busy | None = None):
    clock = FakeClock()
    made: dict[str, list[FlakyConvo]] = {}

    def factory(session_id: str, owner: tuple[str, str]) -> FlakyConvo:
        convo = FlakyConvo(session_id, failures if not made.get(session_id) else 0)
        made.setdefault(session_id, []).append(convo)
        return convo

    retry = sessions.EndRetry(base_seconds=5.0, max_delay_seconds=20.0, give_up_after_seconds=100.0, busy_seconds=30.0)
    registry = SessionRegistry(
        factory, max_sessions=4, idle_timeout_seconds=idle, timer=clock, end_retry=retry,
        on_task_start=busy.start if busy else None, on_task_end=busy.end if busy else None,
    )  # fmt: skip
    return registry, clock, made


def _attempted(registry: SessionRegistry, convo: FlakyConvo, times: int = 1) -> None:
    """Wait for ``times`` attempts to end ``convo``, and for the registry's bookkeeping of them
    (an end is pending until its outcome is recorded)."""
    for _ in range(times):
        assert convo.attempts.acquire(timeout=30)
    deadline = time.monotonic() + 30
    while registry._pending:  # noqa: SLF001 - no public view of the ends still being recorded
        assert time.monotonic() < deadline, "an end's outcome was never recorded"
        time.sleep(0.005)


def _idled_out(registry: SessionRegistry, clock: FakeClock, made: dict[str, list[FlakyConvo]]) -> FlakyConvo:
    """Session ``s1`` opened and left idle past the 10 s timeout, its end attempted once."""
    with registry.open("s1", ALICE):
        pass
    clock.now = 11.0
    registry.reap()
    (convo,) = made["s1"]
    _attempted(registry, convo)
    return convo


def test_an_idle_end_that_fails_is_retried_with_backoff_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """The idle end of a session whose outbox write failed was logged and the session dropped:
    its conversation waited for a later process start. It is now kept and its end tried again
    at the reaps after a doubling backoff (5 s, 10 s, 20 s here), until it succeeds."""
    registry, clock, made = make_flaky(failures=3)
    with registry.open("s1", ALICE):
        pass
    (convo,) = made["s1"]
    with caplog.at_level(logging.INFO, logger="agent.sessions"):
        clock.now = 11.0
        assert registry.reap() == 1
        _attempted(registry, convo)  # failed once: next try due at 16
        clock.now = 15.0
        registry.reap()
        assert convo.attempts.acquire(timeout=0.2) is False  # not due yet
        for now in (16.0, 26.0, 46.0):  # failures 1..3 -> waits 5, 10, 20 s
            clock.now = now
            registry.reap()
            _attempted(registry, convo)
    assert convo.ended == 1 and convo.failures == 0
    clock.now = 1000.0
    registry.reap()
    assert convo.attempts.acquire(timeout=0.2) is False and convo.ended == 1  # ended: never again
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.sessions"]
    assert [line.split(";")[0] for line in lines] == ["ending session failed (OSError)", "session ended after 3 failed attempt(s)"]


def test_an_idle_end_that_keeps_failing_is_given_up_after_its_bound(caplog: pytest.LogCaptureFixture) -> None:
    registry, clock, made = make_flaky(failures=1000)
    with registry.open("s1", ALICE):
        pass
    (convo,) = made["s1"]
    with caplog.at_level(logging.WARNING, logger="agent.sessions"):
        clock.now = 11.0
        registry.reap()
        _attempted(registry, convo)
        for now in (16.0, 26.0, 46.0, 66.0, 86.0, 106.0, 126.0):  # the last one past 100 s since the first
            clock.now = now
            registry.reap()
            _attempted(registry, convo)
        clock.now = 10_000.0
        registry.reap()
        assert convo.attempts.acquire(timeout=0.2) is False  # dropped
    lines = [r.getMessage() for r in caplog.records if r.name == "agent.sessions"]
    assert len(lines) == 2 and "given up" in lines[1] and "8 times" in lines[1]


def test_end_session_tries_a_failed_earlier_end_of_its_session_id_at_once() -> None:
    """The session idled out and its end failed; the client comes back and ends the session:
    the earlier conversation's end is tried again then (not at its backoff); while it still
    fails, nothing is ended (503, as for an earlier end still running), then both are."""
    registry, clock, made = make_flaky(failures=2)
    old = _idled_out(registry, clock, made)  # failed once, retry due at 16
    with registry.open("s1", ALICE) as session:
        with pytest.raises(Unavailable, match="could not be recorded"):
            registry.end(session)  # tried at once, failed again
        assert session.conversation.ended == 0 and not session.closed
    _attempted(registry, old)
    with registry.open("s1", ALICE) as again:
        assert again is session
        registry.end(again)  # the earlier end is tried at once again (not due before t=21) and works
    assert old.ended == 1 and session.conversation.ended == 1 and len(registry) == 0


def test_close_tries_a_failed_idle_end_once_more_and_not_after() -> None:
    registry, clock, made = make_flaky(failures=2)
    with registry.open("s1", ALICE):
        pass
    clock.now = 11.0
    registry.reap()
    (convo,) = made["s1"]
    _attempted(registry, convo)  # retry due at 16: close does not wait for it
    registry.close(timeout=5)
    _attempted(registry, convo)  # the shutdown's try, failed
    clock.now = 1000.0
    registry.reap()
    assert convo.attempts.acquire(timeout=0.2) is False and convo.ended == 0


def test_close_ends_a_session_whose_idle_end_failed_once_the_outbox_is_back() -> None:
    registry, clock, made = make_flaky(failures=1)
    convo = _idled_out(registry, clock, made)
    registry.close(timeout=5)
    assert convo.ended == 1


def test_a_failed_idle_end_keeps_the_app_busy_while_retried_within_the_busy_bound() -> None:
    """On AgentCore a session reporting Healthy is ended by the runtime's idle timeout, its
    microVM with it: a failed end's retries are one busy task, from its first failure until it is
    ended (the summary's own task follows), or for ``busy_seconds`` at most (retried on, not busy)."""
    busy = Busy()
    registry, clock, made = make_flaky(failures=2, busy=busy)
    convo = _idled_out(registry, clock, made)
    assert busy.running == {1}
    clock.now = 16.0
    registry.reap()
    _attempted(registry, convo)  # failed again: the same task
    assert busy.running == {1} and busy.started == 1
    clock.now = 26.0
    registry.reap()
    _attempted(registry, convo)  # ended
    assert convo.ended == 1 and busy.running == set()

    busy = Busy()
    registry, clock, made = make_flaky(failures=1000, busy=busy)
    convo = _idled_out(registry, clock, made)
    for now in (16.0, 26.0, 46.0):  # 35 s after the first failure: past the 30 s bound
        assert busy.running == {1}
        clock.now = now
        registry.reap()
        _attempted(registry, convo)
    assert busy.running == set()  # no longer busy ...
    clock.now = 66.0
    registry.reap()
    _attempted(registry, convo)  # ... yet retried
    assert busy.started == 1


def test_failed_ends_kept_for_a_retry_are_bounded_like_the_live_sessions() -> None:
    """Each kept failed end holds its whole conversation (transcript, agents) for up to an hour:
    while the outbox was down, every session that idled out or was evicted was kept, however
    many, so the memory ``max_sessions`` bounds grew with the traffic. At most ``max_sessions``
    failed ends are kept; one more is given up at once (its checkpoint waits for a later start)."""
    registry, clock, made = make_flaky(failures=1000)
    for n in range(5):  # 4 = max_sessions: opening the fifth evicts the first
        with registry.open(f"s{n}", ALICE):
            pass
    (evicted,) = made["s0"]
    _attempted(registry, evicted)  # kept: one of four
    clock.now = 11.0
    registry.reap()  # s1..s4 idle out: their ends fail too (and s0's first retry, due at 5)
    kept = [made[f"s{n}"][0] for n in range(1, 5)]
    for convo in [evicted, *kept]:
        _attempted(registry, convo)
    clock.now = 30.0  # every retry is due
    registry.reap()
    deadline = time.monotonic() + 30
    while registry._pending:  # noqa: SLF001 - the retries this reap scheduled, until recorded
        assert time.monotonic() < deadline, "a retry's outcome was never recorded"
        time.sleep(0.005)
    attempted_again = [convo.attempts.acquire(blocking=False) for convo in [evicted, *kept]]
    assert sum(attempted_again) == 4  # the four kept first, not the fifth
