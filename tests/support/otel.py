"""Capture OpenTelemetry spans and metrics in a test with the SDK's in-memory exporter and reader.

``capture_telemetry()`` installs an SDK ``TracerProvider`` (``SimpleSpanProcessor`` +
``InMemorySpanExporter``) and ``MeterProvider`` (``InMemoryMetricReader``) as the *global*
providers, as ``opentelemetry-instrument`` does in the container, and restores "no provider"
afterwards. The API lets a process set its providers only once, so the globals are reset the
way ``opentelemetry-test-utils`` (``reset_trace_globals`` / ``reset_metrics_globals``) does it.
Strands caches its tracer (``strands.telemetry.tracer._tracer_instance``, bound to the provider
current when it was built): the cache is cleared on entry and exit, so agents built inside the
block trace to the captured provider.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from strands.telemetry import tracer as strands_tracer

from telemetry import SCOPE


@dataclass
class Captured:
    """What the providers recorded: finished spans and metric data points."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, *, ours: bool = False) -> list[ReadableSpan]:
        """Finished spans in end order (``ours``: only this project's instrumentation scope)."""
        found = list(self.exporter.get_finished_spans())
        if ours:
            found = [s for s in found if s.instrumentation_scope and s.instrumentation_scope.name == SCOPE]
        return found

    def named(self, name: str) -> list[ReadableSpan]:
        """Finished spans called ``name``."""
        return [s for s in self.spans() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        """The only finished span called ``name``."""
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name!r}: {[s.name for s in self.spans()]}"
        return found[0]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        """The finished parent of ``span`` (None for a root)."""
        if span.parent is None:
            return None
        return next(s for s in self.spans() if s.context.span_id == span.parent.span_id)

    def points(self, metric: str) -> list[Any]:
        """Data points of ``metric`` (cumulative, as collected now)."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found

    def total(self, metric: str, **attributes: Any) -> float:
        """Sum (counters) or count (histograms) of the points of ``metric`` whose attributes include ``attributes``."""
        total = 0.0
        for point in self.points(metric):
            if all(point.attributes.get(k) == v for k, v in attributes.items()):
                total += point.count if hasattr(point, "count") else point.value
        return total


def reset_globals() -> None:
    """No global tracer or meter provider (and no cached Strands tracer), as at process start."""
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    metrics_internal._METER_PROVIDER = None  # type: ignore[attr-defined]
    strands_tracer._tracer_instance = None  # type: ignore[attr-defined]


@contextmanager
def capture_telemetry() -> Iterator[Captured]:
    """Global SDK providers recording into memory for the block; no provider again afterwards."""
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    reset_globals()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    try:
        yield Captured(exporter, reader)
    finally:
        reset_globals()
        tracer_provider.shutdown()
        meter_provider.shutdown()
