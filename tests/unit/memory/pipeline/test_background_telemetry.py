"""Summary pipeline telemetry: failed attempts, exhausted entries, the backlog and start-up replay."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from memory.errors import BackendUnavailable
from memory.pipeline.outbox import OutboxEntry
from tests.support.otel import Captured, capture_telemetry


@pytest.fixture
def otel() -> Iterator[Captured]:
    with capture_telemetry() as captured:
        yield captured


def _entry(conversation: str = "c1") -> OutboxEntry:
    return OutboxEntry("acme", "alice", "orchestrator", conversation,
                       [{"role": "user", "text": "My budget is 2M dollars."}], opened="m1")


def test_an_exhausted_summary_stays_in_the_backlog(otel: Captured, fake_store: Any, make_pipeline: Any) -> None:
    fake_store.fail_store = BackendUnavailable("down")
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(_entry())
    assert pipeline.wait(timeout=10)

    assert otel.total("memory.summaries", **{"memory.outcome": "failed"}) == 3  # max_attempts
    assert otel.total("memory.summaries", **{"memory.outcome": "exhausted"}) == 1
    assert otel.total("memory.summaries", **{"memory.outcome": "stored"}) == 0
    assert otel.total("memory.outbox.backlog") == 1  # waiting for a re-sweep
    root = otel.one("memory.summary")
    assert root.attributes["memory.outcome"] == "kept"
    summarize = otel.named("memory.summarize")
    assert len(summarize) == 3 and all(otel.parent(s) is root for s in summarize)

    fake_store.fail_store = None
    pipeline.shutdown(wait=True)
    assert otel.total("memory.outbox.backlog") == 0  # given up by this process (left in the outbox)


def test_replay_is_one_span_and_each_replayed_summary_a_root_without_link(
    otel: Captured, fake_store: Any, make_pipeline: Any
) -> None:
    first = make_pipeline(fake_store)
    first.checkpoint(_entry("c1"))
    first.checkpoint(_entry("c2"))
    first.shutdown(wait=True)

    second = make_pipeline(fake_store)
    assert second.replay_pending() == 2
    assert second.wait(timeout=10)
    replay = otel.one("memory.outbox.replay")
    assert (replay.attributes["memory.outbox.replayed"], replay.attributes["memory.outbox.reopened"]) == (2, 2)
    roots = otel.named("memory.summary")
    assert len(roots) == 2 and all(r.links == () and r.attributes["memory.outcome"] == "done" for r in roots)
    assert otel.total("memory.summaries", **{"memory.outcome": "stored"}) == 2
    assert otel.total("memory.outbox.backlog") == 0
