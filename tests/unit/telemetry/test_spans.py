"""telemetry.spans: no-op without a tracer provider, failures by type name only, clean attributes."""

from __future__ import annotations

from typing import Iterator

import pytest
from opentelemetry.trace import StatusCode

import telemetry
from tests.support.otel import Captured, capture_telemetry


@pytest.fixture
def otel() -> Iterator[Captured]:
    with capture_telemetry() as captured:
        yield captured


def test_without_a_tracer_provider_spans_do_not_record_and_attributes_are_not_computed() -> None:
    named: list[str] = []

    @telemetry.traced("auth.verify_token", lambda value: named.append(value) or {"auth.token.use": "id"})
    def verify(value: str) -> str:
        with telemetry.span("inner") as inner:
            assert not inner.is_recording()
            return value.upper()

    assert telemetry.tracer() is None
    assert verify("token") == "TOKEN" and named == []


def test_traced_runs_the_call_in_a_span_named_by_its_arguments(otel: Captured) -> None:
    @telemetry.traced("memory.fusion", lambda query, hits: {"memory.hits": len(hits), "query": None})
    def fuse(query: str, hits: list[int]) -> int:
        telemetry.annotate(telemetry.current_span(), {telemetry.OUTCOME: "done"})
        return sum(hits)

    assert fuse("q", [1, 2]) == 3
    span = otel.one("memory.fusion")
    assert dict(span.attributes) == {"memory.hits": 2, "memory.outcome": "done"}
    assert span.instrumentation_scope.name == telemetry.SCOPE


def test_failure_records_the_type_name_never_the_message(otel: Captured) -> None:
    with pytest.raises(ValueError), telemetry.span("memory.store"):
        raise ValueError("the user's secret budget is 2M dollars")
    span = otel.one("memory.store")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError"
    assert span.attributes["error.type"] == "ValueError"
    assert span.events == ()  # no exception event (its message and stack could carry data)


def test_attributes_keep_only_short_scalar_values() -> None:
    cleaned = telemetry.clean({"a": None, "b": "x" * 300, "c": [1, 2], "d": "acme", "e": 3, "f": 0.5, "g": True})
    assert cleaned == {"d": "acme", "e": 3, "f": 0.5, "g": True}
    assert telemetry.clean({"s": "x" * telemetry.MAX_STRING_ATTRIBUTE}) == {"s": "x" * telemetry.MAX_STRING_ATTRIBUTE}


def test_a_background_span_starts_a_new_trace_linked_to_its_cause(otel: Captured) -> None:
    with telemetry.span("cause") as cause_span:
        with telemetry.background_span("work", {"k": 1}) as root:
            assert root.get_span_context().trace_id != cause_span.get_span_context().trace_id
    cause, work = otel.one("cause"), otel.one("work")
    assert work.parent is None and [link.context.span_id for link in work.links] == [cause.context.span_id]
    assert work.attributes["k"] == 1
