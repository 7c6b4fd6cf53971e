"""Summary pipeline telemetry: failed attempts, exhausted entries, the backlog and start-up replay."""

from __future__ import annotations

import dataclasses
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
    assert pipeline.wait(30)

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
    assert second.wait(30)
    replay = otel.one("memory.outbox.replay")
    assert (replay.attributes["memory.outbox.replayed"], replay.attributes["memory.outbox.reopened"]) == (2, 2)
    roots = otel.named("memory.summary")
    assert len(roots) == 2 and all(r.links == () and r.attributes["memory.outcome"] == "done" for r in roots)
    assert otel.total("memory.summaries", **{"memory.outcome": "stored"}) == 2
    assert otel.total("memory.outbox.backlog") == 0


def test_each_checkpoint_write_is_a_child_of_its_own_turn_not_of_the_turn_that_started_the_writer(
    otel: Captured, fake_store: Any, make_pipeline: Any
) -> None:
    """Strands (building its tracer) and ``opentelemetry-instrument`` turn on the threading
    instrumentation: a thread then runs in the context current when it was *started*. The
    checkpoint writer is started by the first checkpoint, inside that turn's span, and lives on."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    from opentelemetry.trace import format_span_id

    from memory import telemetry

    ThreadingInstrumentor().instrument()  # what Strands' tracer does (a no-op if already done)
    pipeline = make_pipeline(fake_store)
    turns = []
    for conversation in ("c1", "c2"):
        with telemetry.span("memory.checkpoint", {"gen_ai.conversation.id": conversation}) as turn:
            pipeline.checkpoint(_entry(conversation))
        turns.append(format_span_id(turn.get_span_context().span_id))
        assert pipeline.flush(30)

    writes = otel.named("memory.outbox.write")
    parents = {w.attributes["gen_ai.conversation.id"]: format_span_id(w.parent.span_id) if w.parent else None
               for w in writes}
    assert parents == {"c1": turns[0], "c2": turns[1]}


def test_the_erasure_check_before_a_checkpoint_write_is_traced_under_that_turn_too(
    otel: Captured, fake_store: Any, outbox_dir: Any
) -> None:
    """The writer reads the user's erasure markers (an S3 listing on AWS, which the distro's
    botocore instrumentation traces) before each write: in the context of the turn too."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor
    from opentelemetry.trace import format_span_id

    from memory import telemetry
    from memory.pipeline.background import SummaryPipeline
    from memory.pipeline.outbox_local import LocalOutbox
    from memory.pipeline.summarizer import Summarizer

    class TracedOutbox(LocalOutbox):
        def erasures(self, tenant_id: Any, user_id: Any) -> Any:
            with telemetry.span("ListObjectsV2"):  # what botocore's instrumentation would record
                return super().erasures(tenant_id, user_id)

    ThreadingInstrumentor().instrument()  # what Strands' tracer does (a no-op if already done)
    pipeline = SummaryPipeline(fake_store, TracedOutbox(outbox_dir), Summarizer(), erasure_refresh_seconds=0)
    turns = []
    try:
        for conversation in ("c1", "c2"):
            with telemetry.span("memory.checkpoint") as turn:
                pipeline.checkpoint(_entry(conversation))
            turns.append(format_span_id(turn.get_span_context().span_id))
            assert pipeline.flush(30)
    finally:
        pipeline.shutdown(wait=True)
    listings = [format_span_id(s.parent.span_id) if s.parent else None for s in otel.named("ListObjectsV2")]
    assert listings == turns


def test_the_backlog_reads_as_a_level_under_the_distros_delta_temporality(fake_store: Any, make_pipeline: Any) -> None:
    """The AWS distro's ``awsemf`` exporter asks for DELTA temporality for every instrument kind:
    an up-down counter then exports only its change per period (0 once nothing moves), not the
    number of entries still waiting, which is what an operator graphs."""
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import (
        Counter, Histogram, MeterProvider, ObservableCounter, ObservableGauge, ObservableUpDownCounter, UpDownCounter)
    from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

    from tests.support.otel import reset_globals

    kinds = (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
    reader = InMemoryMetricReader(preferred_temporality={kind: AggregationTemporality.DELTA for kind in kinds})
    provider = MeterProvider(metric_readers=[reader])

    def backlog() -> list[Any]:
        data = reader.get_metrics_data()  # None: nothing to export in this period
        return [] if data is None else [p.value for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
                for p in m.data.data_points if m.name == "memory.outbox.backlog"]

    reset_globals()
    metrics.set_meter_provider(provider)
    try:
        fake_store.fail_store = BackendUnavailable("down")
        pipeline = make_pipeline(fake_store)
        pipeline.end_conversation(_entry())  # exhausted: waits for a re-sweep
        assert pipeline.wait(30)
        levels = [backlog(), backlog()]  # two export periods, nothing changed in the second
    finally:
        reset_globals()
        provider.shutdown()
    assert levels == [[1], [1]]


def test_a_summary_run_again_for_a_later_end_links_to_that_end_not_to_an_earlier_request(
    otel: Captured, fake_store: Any, outbox_dir: Any
) -> None:
    """A conversation ended again just after its summary task's last look is summarized once more
    when that task finishes, scheduled from the task's worker thread: a thread that, with the
    threading instrumentation, runs in the context of the request that happened to start it."""
    import threading

    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    from memory import telemetry
    from memory.pipeline.background import SummaryPipeline
    from memory.pipeline.outbox_local import LocalOutbox
    from memory.pipeline.summarizer import Summarizer

    first, second = _entry(), dataclasses.replace(_entry(), transcript=[*_entry().transcript, *_entry().transcript])
    ended_again: list[Any] = []

    class EndsAgainAfterTheLastLook(LocalOutbox):
        def release(self, claim: Any) -> None:
            super().release(claim)
            if not ended_again:  # the first task is done with the entry, its thread not yet
                def end() -> None:
                    with telemetry.span("turn-2") as turn:
                        pipeline.end_conversation(second)
                    ended_again.append(turn)
                worker = threading.Thread(target=end)
                worker.start()
                worker.join()

    ThreadingInstrumentor().instrument()  # what Strands' tracer does (a no-op if already done)
    pipeline = SummaryPipeline(fake_store, EndsAgainAfterTheLastLook(outbox_dir), Summarizer())
    try:
        with telemetry.span("turn-1"):
            pipeline.end_conversation(first)
        assert pipeline.wait(30)
    finally:
        pipeline.shutdown(wait=True)

    writes = {otel.parent(w).name: w.context.span_id for w in otel.named("memory.outbox.write")}
    summaries = otel.named("memory.summary")
    assert len(summaries) == 2
    assert [[link.context.span_id for link in s.links] for s in summaries] == [[writes["turn-1"]], [writes["turn-2"]]]


def test_a_dead_lettered_summary_is_a_failed_root_span_not_a_done_one(
    otel: Captured, fake_store: Any, make_pipeline: Any
) -> None:
    """An operator finds failed summaries in Transaction Search by the root span's status or its
    ``memory.outcome``: a dead letter must not read ``done``."""
    from opentelemetry.trace import StatusCode

    from memory.errors import AccessDenied

    fake_store.fail_store = AccessDenied("denied")  # permanent: dead-lettered at once
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(_entry())
    assert pipeline.wait(30)

    assert otel.total("memory.summaries", **{"memory.outcome": "dead_lettered"}) == 1
    root = otel.one("memory.summary")
    assert root.attributes["memory.outcome"] == "dead_lettered"
    assert root.status.status_code is StatusCode.ERROR and root.attributes["error.type"] == "AccessDenied"


def test_a_re_swept_summary_links_to_the_end_that_caused_it_not_to_the_sweepers_context(
    otel: Captured, fake_store: Any, make_pipeline: Any
) -> None:
    """An entry whose attempts were exhausted is tried again a round later, scheduled by a sweep
    (the sweeper thread, started at start-up or, by ``memory.compat``, inside whichever request
    built the first plugin). That round's ``memory.summary`` root must link to the conversation's
    end as the first round's does: not to nothing, nor to an unrelated request."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    from memory import telemetry
    from memory.pipeline.background import RetryPolicy

    ThreadingInstrumentor().instrument()  # what Strands' tracer does (a no-op if already done)
    fake_store.fail_store = BackendUnavailable("down")
    pipeline = make_pipeline(fake_store, retry=RetryPolicy(max_attempts=1, base_delay=0.001, sweep_base_delay=0))
    with telemetry.span("turn"):
        pipeline.end_conversation(_entry())
    assert pipeline.wait(30) and pipeline.waiting == 1
    fake_store.fail_store = None
    with telemetry.span("unrelated request"):
        assert pipeline.sweep() == 1
    assert pipeline.wait(30)

    write = otel.one("memory.outbox.write")
    rounds = otel.named("memory.summary")
    assert [r.attributes["memory.outcome"] for r in rounds] == ["kept", "done"]
    assert [[link.context.span_id for link in r.links] for r in rounds] == [[write.context.span_id]] * 2


def test_a_summary_another_process_holds_the_claim_of_is_not_reported_done(
    otel: Captured, fake_store: Any, make_pipeline: Any, outbox_dir: Any
) -> None:
    """On AgentCore every session's process replays the shared outbox at start: most entries it
    finds are being stored by the process that claimed them. Its ``memory.summary`` root said
    ``done`` for each, so counting done summaries in Transaction Search counted work nobody
    finished here (and the claimant may still die)."""
    from memory.pipeline.outbox_local import LocalOutbox

    other = LocalOutbox(outbox_dir)  # the claimant: another process on the same outbox
    entry = dataclasses.replace(_entry(), open=False)
    claim = other.claim(other.put(entry), entry.tenant_id)
    assert claim is not None
    pipeline = make_pipeline(fake_store)
    try:
        assert pipeline.replay_pending() == 1 and pipeline.wait(30)
    finally:
        other.release(claim)
    root = otel.one("memory.summary")
    assert root.attributes["memory.outcome"] == "elsewhere"
    assert otel.total("memory.summaries", **{"memory.outcome": "stored"}) == 0
