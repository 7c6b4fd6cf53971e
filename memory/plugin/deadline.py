"""Reads with a deadline: a memory backend that hangs costs a turn its memories, not minutes.

Every client retries a call that times out (``memory.aws.client_config``: 5 attempts of up to
10 s each, with backoff), so a hung S3 Vectors, Bedrock or STS endpoint held a conversation's
first turn, or a recall tool call, for about a minute before it answered without memory. The
plugin's reads run here instead: each on a daemon thread, which the caller waits for at most
``seconds``. Past that the read is abandoned (it ends when botocore gives up; its result is
dropped; its thread then serves later reads) and :class:`RetrievalTimeout` is raised, which the
plugin treats as any retrieval failure: a warning, a metric, the turn answered without memory.

At most :data:`MAX_ABANDONED_READS` reads run at once in the process, so a backend that hangs
for every turn cannot pile up threads; a read that finds none free within its deadline is
refused the same way. A thread is started only when every one started before is running a read
(so there are never more than that many), and kept for the next reads: starting one per read
cost each conversation's first turn about 0.1 ms of CPU and two thread switches. The threads
are daemons: an abandoned read never holds up the exit.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, TypeVar

T = TypeVar("T")

#: A read (embedding, query, credentials) that has not answered by then is abandoned. Local
#: first-turn retrieval takes about 3 ms at 5,000 memories; S3 Vectors with Nova about 0.1-0.5 s.
DEFAULT_RETRIEVAL_TIMEOUT_SECONDS = 5.0
#: Reads running at once in the process (hung ones included) before a read is refused.
MAX_ABANDONED_READS = 32

_slots = threading.BoundedSemaphore(MAX_ABANDONED_READS)


class _Readers:
    """The daemon threads that run reads: an idle one if any, else a new one (module docstring)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.BoundedSemaphore]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a job that no caller has claimed yet

    def run(self, job: Callable[[], None], slot: threading.BoundedSemaphore) -> None:
        """Run ``job`` on a thread, which releases ``slot`` (the caller's) once ready for another.

        Raises:
            RuntimeError: No thread was idle and none could start; ``slot`` is the caller's still.
        """
        with self._lock:
            idle = self._idle > 0
            if idle:
                self._idle -= 1  # claimed: exactly one waiting thread takes the job
        if idle:
            self._jobs.put((job, slot))
        else:
            threading.Thread(target=self._serve, args=(job, slot), name="memory-read", daemon=True).start()

    def _serve(self, job: Callable[[], None], slot: threading.BoundedSemaphore) -> None:
        while True:
            job()
            with self._lock:
                self._idle += 1
            slot.release()  # after counting itself idle: a read taking the slot finds this thread
            job, slot = self._jobs.get()


_readers = _Readers()


class RetrievalTimeout(TimeoutError):
    """A memory read did not answer within its deadline (it was abandoned, not cancelled)."""


def check_timeout(seconds: float | None, name: str) -> float | None:
    """``seconds`` if it is a usable deadline (None or more than 0).

    Raises:
        ValueError: ``seconds`` is 0 or less (naming ``name``): every read would be abandoned.
    """
    if seconds is not None and not seconds > 0:
        raise ValueError(f"{name} must be more than 0 seconds, or None for no deadline")
    return seconds


def within(seconds: float | None, read: Callable[[], T]) -> T:
    """``read()``, or :class:`RetrievalTimeout` once ``seconds`` have passed (None: no deadline).

    ``read`` runs on a daemon thread (``_Readers``) in a copy of the caller's context (its trace span).

    Raises:
        RetrievalTimeout: ``read`` did not finish in time, or too many reads were still running.
        Exception: Whatever ``read`` raised in time.
    """
    if seconds is None:
        return read()
    seconds = min(seconds, threading.TIMEOUT_MAX)  # a lock waits no longer (OverflowError): inf included
    deadline = time.monotonic() + seconds
    slot = _slots
    if not slot.acquire(timeout=seconds):
        raise RetrievalTimeout(f"memory read refused: {MAX_ABANDONED_READS} reads still running")
    outcome: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.set_result(context.run(read))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            outcome.set_exception(exc)

    try:
        _readers.run(run, slot)
    except BaseException:  # e.g. RuntimeError "can't start new thread": no thread holds the slot
        slot.release()
        raise
    try:
        return outcome.result(timeout=min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX))
    except FutureTimeout:
        raise RetrievalTimeout(f"memory read took longer than {seconds:g} s; abandoned") from None
