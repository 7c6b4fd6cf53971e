"""memory.plugin.deadline: a read that hangs is abandoned at its deadline, never waited for."""

from __future__ import annotations

import contextvars
import threading

import pytest

from memory.plugin import deadline
from memory.plugin.deadline import RetrievalTimeout, within

CALLER = contextvars.ContextVar("caller", default="none")


def test_a_read_in_time_returns_its_value_in_the_callers_context() -> None:
    CALLER.set("request-7")
    assert within(5.0, lambda: (CALLER.get(), threading.current_thread().daemon)) == ("request-7", True)


def test_a_reads_error_reaches_the_caller() -> None:
    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        within(5.0, fail)


def test_a_hung_read_is_abandoned_at_its_deadline_and_its_late_result_dropped() -> None:
    release, finished = threading.Event(), threading.Event()

    def hang() -> str:
        release.wait(30)
        finished.set()
        return "late"

    with pytest.raises(RetrievalTimeout, match="longer than 0.2 s"):
        within(0.2, hang)
    assert not finished.is_set()  # the caller went on while the read still hangs
    release.set()
    assert finished.wait(5)


def test_no_deadline_runs_the_read_in_the_callers_thread() -> None:
    assert within(None, threading.current_thread) is threading.current_thread()


def test_reads_still_running_bound_the_threads_and_a_read_finding_none_free_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(deadline, "_slots", threading.BoundedSemaphore(1))
    release = threading.Event()
    with pytest.raises(RetrievalTimeout):
        within(0.1, lambda: release.wait(30))
    ran = threading.Event()
    with pytest.raises(RetrievalTimeout, match="still running"):
        within(0.1, ran.set)
    assert not ran.is_set()  # refused, not started
    release.set()
    assert wait_for_free_slot()
    assert within(5.0, lambda: "after") == "after"  # the slot came back when the hung read ended


def wait_for_free_slot() -> bool:
    for _ in range(500):
        if deadline._slots.acquire(timeout=0.01):
            deadline._slots.release()
            return True
    return False


@pytest.mark.parametrize("seconds", [float("inf"), 1e12])
def test_a_deadline_past_the_longest_wait_of_a_lock_waits_for_the_read(seconds: float) -> None:
    """A lock's wait refuses more than threading.TIMEOUT_MAX (OverflowError): a deadline of
    AGENT_RETRIEVAL_TIMEOUT_SECONDS=inf (or 1e12) failed every read, even a fast one."""
    started = threading.Event()

    def read() -> str:
        started.wait(5)  # still running when the caller starts to wait
        return "value"

    threading.Timer(0.1, started.set).start()
    assert within(seconds, read) == "value"


def test_a_read_whose_thread_cannot_start_gives_its_slot_back(monkeypatch) -> None:
    """CPython raises RuntimeError("can't start new thread") when the OS refuses one (threads or
    memory exhausted): the read fails, and its slot is free again for the next read."""
    monkeypatch.setattr(deadline, "_slots", threading.BoundedSemaphore(1))
    monkeypatch.setattr(deadline, "_readers", deadline._Readers())  # no idle thread: one must start

    class Refused(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    with monkeypatch.context() as refusing:
        refusing.setattr(deadline.threading, "Thread", Refused)
        with pytest.raises(RuntimeError, match="can't start"):
            within(5.0, lambda: "never")
    assert within(0.5, lambda: "next") == "next"


def test_reads_one_after_the_other_run_on_one_thread(monkeypatch) -> None:
    """A thread started per read cost every first turn a thread's start and end."""
    monkeypatch.setattr(deadline, "_readers", deadline._Readers())
    threads = [within(5.0, threading.current_thread) for _ in range(5)]
    assert len(set(threads)) == 1 and threads[0] is not threading.current_thread() and threads[0].daemon


def test_threads_never_outnumber_the_reads_running_and_an_abandoned_ones_serves_again(monkeypatch) -> None:
    monkeypatch.setattr(deadline, "_slots", threading.BoundedSemaphore(2))
    monkeypatch.setattr(deadline, "_readers", deadline._Readers())
    release = threading.Event()
    hung: list[threading.Thread] = []

    def hang() -> None:
        hung.append(threading.current_thread())
        release.wait(30)

    for _ in range(2):
        with pytest.raises(RetrievalTimeout):
            within(0.1, hang)
    assert len(set(hung)) == 2  # two reads running at once: two threads
    with pytest.raises(RetrievalTimeout, match="still running"):
        within(0.1, threading.current_thread)
    release.set()
    assert wait_for_free_slot() and wait_for_free_slot()
    later = {within(5.0, threading.current_thread) for _ in range(6)}
    assert later <= set(hung)  # the abandoned reads' threads, no third one


@pytest.mark.parametrize("seconds", [0, -1, -0.5])
def test_a_deadline_every_read_would_miss_is_refused_where_it_is_given(fake_store, seconds) -> None:
    """Every read would be abandoned at once: memory silently off, a warning per turn."""
    from memory.plugin.plugin import MemoryPlugin
    from memory.plugin.recall_tool import build_recall_tool
    from memory.strands_store import StrandsMemoryStore

    with pytest.raises(ValueError, match="retrieval_timeout must be more than 0"):
        MemoryPlugin(fake_store, pipeline=None, retrieval_timeout=seconds)
    with pytest.raises(ValueError, match="timeout must be more than 0"):
        build_recall_tool(fake_store, lambda context: None, timeout=seconds)
    with pytest.raises(ValueError, match="retrieval_timeout must be more than 0"):
        StrandsMemoryStore(fake_store, user_id="alice", agent_name="orchestrator", tenant_id="acme", retrieval_timeout=seconds)
