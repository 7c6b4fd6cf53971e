"""memory.telemetry: no-op without an SDK, retrieval spans and metrics without data, background
roots with links (the neutral primitives are tested in tests/unit/telemetry)."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from memory import telemetry
from memory.types import Memory, Scope
from tests.support.otel import Captured, capture_telemetry

SCOPE = Scope("alice@example.com", "acme", "orchestrator")


@pytest.fixture
def otel() -> Iterator[Captured]:
    with capture_telemetry() as captured:
        yield captured


@pytest.fixture
def hasher() -> Iterator[None]:
    telemetry.set_user_hasher(lambda user_id: f"h-{len(user_id)}")
    yield
    telemetry.set_user_hasher(None)


def test_without_an_sdk_everything_is_the_api_no_op() -> None:
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    with telemetry.span("memory.checkpoint", {"memory.tenant.id": "acme"}) as span:
        assert not span.is_recording()
    with telemetry.retrieval("inject", SCOPE) as found:
        assert found([]) == []
    telemetry.summary_counted("stored")
    telemetry.outbox_backlog(+1)
    telemetry.tvm_credentials("cache", "acme")


def test_user_appears_only_as_the_installed_hash(otel: Captured, hasher: None) -> None:
    with telemetry.retrieval("recall", SCOPE, **{"memory.top_k": 3}) as found:
        now = datetime.now(timezone.utc)
        found([Memory(id="m1", content="x", user_id=SCOPE.user_id, stored_at=now, score=0.61),
               Memory(id="m2", content="y", user_id=SCOPE.user_id, stored_at=now, score=0.25)])
    span = otel.one("memory.recall")
    assert span.attributes["user.hash"] == "h-17"
    assert SCOPE.user_id not in {str(v) for v in span.attributes.values()}
    assert span.attributes["memory.tenant.id"] == "acme"
    assert span.attributes["gen_ai.agent.name"] == "orchestrator"
    assert span.attributes["gen_ai.operation.name"] == "retrieval"
    assert (span.attributes["memory.result.count"], span.attributes["memory.top_k"]) == (2, 3)
    assert (span.attributes["memory.score.max"], span.attributes["memory.score.min"]) == (0.61, 0.25)
    assert otel.total("memory.retrieval.duration", **{"memory.operation": "recall"}) == 1
    assert otel.points("memory.injected") == []  # only first-turn injection counts there


def test_without_a_hasher_no_user_attribute(otel: Captured) -> None:
    with telemetry.retrieval("inject", SCOPE) as found:
        found([])
    span = otel.one("memory.inject")
    assert "user.hash" not in span.attributes
    assert otel.total("memory.injected") == 1


def test_failed_retrieval_is_timed_with_its_error_type(otel: Captured) -> None:
    with pytest.raises(TimeoutError), telemetry.retrieval("inject", SCOPE):
        raise TimeoutError
    assert otel.total("memory.retrieval.duration", **{"error.type": "TimeoutError"}) == 1
    assert otel.one("memory.inject").status.status_code is StatusCode.ERROR


def test_background_work_gets_its_own_trace_linked_to_its_cause(otel: Captured) -> None:
    done = threading.Event()

    def work(entry_id: str) -> bool:
        with telemetry.span("memory.summarize"):
            pass
        done.set()
        return entry_id == "sum-1"

    with telemetry.span("memory.conversation.end"):
        wrapped = telemetry.in_background("memory.summary", work)
    thread = threading.Thread(target=wrapped, args=("sum-1",))
    thread.start()
    thread.join()

    cause, root, child = otel.one("memory.conversation.end"), otel.one("memory.summary"), otel.one("memory.summarize")
    assert root.parent is None and root.context.trace_id != cause.context.trace_id
    assert [link.context.span_id for link in root.links] == [cause.context.span_id]
    assert root.attributes["memory.cause.trace_id"] == trace.format_trace_id(cause.context.trace_id)
    assert root.attributes["memory.outbox.entry.id"] == "sum-1"
    assert root.attributes["memory.outcome"] == "done"
    assert otel.parent(child) is root


def test_background_work_without_a_cause_has_no_link(otel: Captured) -> None:
    telemetry.in_background("memory.summary", lambda entry_id: False)("sum-2")
    root = otel.one("memory.summary")
    assert root.links == () and "memory.cause.trace_id" not in root.attributes
    assert root.attributes["memory.outcome"] == "kept"


def test_summary_outcomes_counted_by_pipeline_counter_name(otel: Captured) -> None:
    for name in ("stored", "stored", "failed_attempts", "exhausted", "dead_lettered", "accepted"):
        telemetry.summary_counted(name)
    assert otel.total("memory.summaries", **{"memory.outcome": "stored"}) == 2
    assert otel.total("memory.summaries", **{"memory.outcome": "failed"}) == 1
    assert otel.total("memory.summaries", **{"memory.outcome": "exhausted"}) == 1
    assert otel.total("memory.summaries", **{"memory.outcome": "dead_lettered"}) == 1
    assert otel.total("memory.summaries") == 5  # "accepted" is not a summary outcome


def test_instruments_follow_a_new_global_provider() -> None:
    with capture_telemetry() as first:
        telemetry.outbox_backlog(+1)
    with capture_telemetry() as second:
        telemetry.outbox_backlog(+1)
        telemetry.outbox_backlog(+1)
    assert first.total("memory.outbox.backlog") == 1
    assert second.total("memory.outbox.backlog") == 2


def test_a_backlog_counted_before_any_provider_does_not_hide_the_one_of_a_later_provider() -> None:
    """Instruments made while no provider is set were the API's proxies, which register
    themselves (the backlog gauge's callback included) in every provider set later, where they
    shadowed the gauge made for that provider under the same name."""
    telemetry.outbox_backlog(+1)  # no SDK
    with capture_telemetry() as first:
        telemetry.outbox_backlog(+1)
        in_first = first.total("memory.outbox.backlog")
    with capture_telemetry() as second:
        telemetry.outbox_backlog(+1)
        telemetry.outbox_backlog(+1)
        in_second = second.total("memory.outbox.backlog")
    assert (in_first, in_second) == (1, 2)


def test_two_first_backlog_counts_racing_on_a_new_provider_are_both_observed() -> None:
    """The instruments are built on first use under a provider; two threads doing that at once
    (at an AgentCore session's start: the outbox replay thread and the first request) each built
    them. The SDK keeps the first observable gauge registered under a name and ignores the
    callback of the second: the backlog one thread counted into was never observed."""
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tests.support.otel import reset_globals

    both_in = threading.Barrier(2, timeout=1)

    class SlowMeterProvider(MeterProvider):
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            try:
                both_in.wait()  # the two first uses overlap (as they may on a busy host)
            except threading.BrokenBarrierError:
                pass  # only one thread builds: the other waits for it
            return super().get_meter(*args, **kwargs)

    reader = InMemoryMetricReader()
    provider = SlowMeterProvider(metric_readers=[reader])
    reset_globals()
    otel_metrics.set_meter_provider(provider)
    try:
        threads = [threading.Thread(target=telemetry.outbox_backlog, args=(1,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        data = reader.get_metrics_data()
    finally:
        reset_globals()
        provider.shutdown()
    values = [p.value for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics
              if m.name == "memory.outbox.backlog" for p in m.data.data_points]
    assert values == [2]
