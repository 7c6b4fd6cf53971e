"""Waiting helpers shared by the pipeline and end-to-end tests."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from memory.pipeline.summarizer import Summarizer


class BusyTasks:
    """Stands in for AgentCore's add_async_task / complete_async_task: counts open tasks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: set[int] = set()
        self.started = 0

    def start(self, name: str) -> int:
        with self.lock:
            self.started += 1
            self.open.add(self.started)
            return self.started

    def end(self, token: int) -> None:
        with self.lock:
            self.open.remove(token)


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


class GatedSummarizer(Summarizer):
    """Joins the user's turns, but only once ``gate`` is set (``started`` tells it is waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.started, self.gate = threading.Event(), threading.Event()

    def summarize(self, turns):  # type: ignore[override]
        self.started.set()
        self.gate.wait(5)
        return " ".join(t["text"] for t in turns if t["role"] == "user")
