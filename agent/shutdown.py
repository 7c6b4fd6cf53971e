"""One deadline for the whole shutdown, and the server that starts it when the stop signal comes.

AgentCore Runtime gives a stopping session's process up to 15 s ("Termination can last up to
15 seconds due to logging and other process completion", docs/service-facts.md) before it is
killed. Every step of the shutdown therefore takes its time from one budget
(``AGENT_SHUTDOWN_GRACE_SECONDS``), counted from the moment uvicorn starts shutting down, in the
order durability needs:

1. The open conversations are ended at once: their closed transcripts go to the outbox
   while requests still run (a busy session's end waits for its request).
2. Requests and turns in flight (uvicorn's graceful wait, the registry's wait for a busy
   session) may use the budget up to :data:`TURN_SHARE`: a turn that never returns cannot take
   the time the rest needs. uvicorn then cancels the plain requests still running, which
   releases their sessions: the registry waits for that until :data:`RELEASE_SHARE` and ends
   them (closed entries, stored at the next start at once rather than after the orphan delay).
   A session still held then (a streamed turn that never returns) is abandoned and logged; its
   answered turns are in its checkpoint.
3. Ends, queued checkpoints and summaries in flight may use it up to :data:`STORE_SHARE`.
4. The telemetry flush takes what is left.

What a step could not finish is in the outbox (closed entries, checkpoints) and the next start
replays it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import uvicorn

logger = logging.getLogger(__name__)

#: Share of the budget requests and turns in flight may use.
TURN_SHARE = 0.5
#: Share of the budget by which a busy session must be released to be ended at shutdown: past
#: :data:`TURN_SHARE`, a plain request uvicorn cancelled releases its session within moments.
RELEASE_SHARE = 0.6
#: Share of the budget by which conversations are ended and summaries given up (the rest: telemetry).
STORE_SHARE = 0.8


class ShutdownDeadline:
    """The end of the shutdown budget, fixed when the shutdown starts (``start``, idempotent)."""

    def __init__(self, budget_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget_seconds
        self._clock = clock
        self._started: float | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start counting (the first call only)."""
        with self._lock:
            if self._started is None:
                self._started = self._clock()

    def remaining(self, share: float = 1.0) -> float:
        """Seconds left until ``share`` of the budget is spent (0 once it is); starts the count."""
        self.start()
        assert self._started is not None
        return max(0.0, self._started + share * self.budget - self._clock())


class StoppingServer(uvicorn.Server):
    """uvicorn's server, calling ``on_start`` once it listens and ``on_stop`` (which must not
    block) as its shutdown begins.

    Its graceful wait for requests is bounded by ``deadline``'s :data:`TURN_SHARE`.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        deadline: ShutdownDeadline,
        on_stop: Callable[[], None],
        on_start: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(config)
        self._deadline = deadline
        self._on_stop = on_stop
        self._on_start = on_start

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)  # a port it cannot bind or a failed lifespan: SystemExit
        if self.started:
            self._on_start()

    async def shutdown(self, sockets: Any = None) -> None:
        self._deadline.start()
        try:
            self._on_stop()
        except Exception:  # noqa: BLE001 - the shutdown goes on; the lifespan's close retries
            logger.exception("starting the shutdown failed")
        # uvicorn reads it (a float works: ``asyncio.wait_for``) for its wait on connections and tasks
        self.config.timeout_graceful_shutdown = self._deadline.remaining(TURN_SHARE)  # type: ignore[assignment]
        await super().shutdown(sockets)
