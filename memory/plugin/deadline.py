"""Reads with a deadline: a memory backend that hangs costs a turn its memories, not minutes.

Every client retries a call that times out (``memory.aws.client_config``: 5 attempts of up to
10 s each, with backoff), so a hung S3 Vectors, Bedrock or STS endpoint held a conversation's
first turn, or a recall tool call, for about a minute before it answered without memory. The
plugin's reads run here instead: each on a daemon thread of its own, which the caller waits for
at most ``seconds``. Past that the read is abandoned (it ends when botocore gives up; its
result is dropped) and :class:`RetrievalTimeout` is raised, which the plugin treats as any
retrieval failure: a warning, a metric, the turn answered without memory.

At most :data:`MAX_ABANDONED_READS` reads run at once in the process, so a backend that hangs
for every turn cannot pile up threads; a read that finds none free within its deadline is
refused the same way. The threads are daemons: an abandoned read never holds up the exit.
"""

from __future__ import annotations

import contextvars
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

    ``read`` runs on a daemon thread in a copy of the caller's context (its trace span).

    Raises:
        RetrievalTimeout: ``read`` did not finish in time, or too many reads were still running.
        Exception: Whatever ``read`` raised in time.
    """
    if seconds is None:
        return read()
    seconds = min(seconds, threading.TIMEOUT_MAX)  # a lock waits no longer (OverflowError): inf included
    deadline = time.monotonic() + seconds
    if not _slots.acquire(timeout=seconds):
        raise RetrievalTimeout(f"memory read refused: {MAX_ABANDONED_READS} reads still running")
    outcome: Future[T] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            outcome.set_result(context.run(read))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            outcome.set_exception(exc)
        finally:
            _slots.release()

    try:
        threading.Thread(target=run, name="memory-read", daemon=True).start()
    except BaseException:  # e.g. RuntimeError "can't start new thread": run never releases the slot
        _slots.release()
        raise
    try:
        return outcome.result(timeout=min(max(0.0, deadline - time.monotonic()), threading.TIMEOUT_MAX))
    except FutureTimeout:
        raise RetrievalTimeout(f"memory read took longer than {seconds:g} s; abandoned") from None
