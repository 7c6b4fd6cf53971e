"""telemetry.providers: the tracer and instruments follow the global providers, never bound at import."""

from __future__ import annotations

from opentelemetry import metrics

import telemetry
from tests.support.otel import capture_telemetry


def _counter(meter: metrics.Meter) -> metrics.Counter:
    return meter.create_counter("test.events", unit="{event}")


def test_instruments_follow_a_new_global_provider() -> None:
    events = telemetry.Instruments(_counter)
    events.get().add(1)  # no SDK: the API's no-op, nothing to see
    with capture_telemetry() as first:
        events.get().add(1)
    with capture_telemetry() as second:
        events.get().add(1)
        events.get().add(1)
    assert (first.total("test.events"), second.total("test.events")) == (1, 2)


def test_the_tracer_exists_only_while_a_provider_is_set() -> None:
    assert telemetry.tracer() is None
    with capture_telemetry() as captured:
        assert telemetry.tracer() is not None
        with telemetry.span("recorded"):
            pass
    assert telemetry.tracer() is None
    assert [s.name for s in captured.spans(ours=True)] == ["recorded"]
