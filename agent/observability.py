"""The app's telemetry set-up: Strands' content redaction and an optional console exporter.

The memory library (``memory.telemetry``), ``auth`` (both on the neutral ``telemetry`` package)
and Strands emit through the OpenTelemetry API only. Exporters come from outside:
``opentelemetry-instrument`` with the AWS distro in the AgentCore container, or the standard
``OTEL_*`` variables with any distro. For development, ``AGENT_OTEL_CONSOLE=true`` prints every
span (one line each) and, every ``OTEL_METRIC_EXPORT_INTERVAL`` ms and at exit, every metric to
stdout; that needs the ``opentelemetry-sdk`` package (a dependency of strands-agents today;
``pip install '.[otel]'`` names it explicitly), which nothing else in the app imports.

Unless ``AGENT_OTEL_CAPTURE_CONTENT=true``, no span carries prompts, messages or tool results:
Strands' system-prompt events would carry the injected memories and its tool spans the recall
tool's result. So ``gen_ai_unredacted_attributes=`` (redact all) is added to
``OTEL_SEMCONV_STABILITY_OPT_IN`` (read when Strands builds its tracer; an explicit
``gen_ai_unredacted_attributes=...`` is kept), and ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
is set to ``false`` (the AWS distro defaults it to ``true`` for its Bedrock instrumentation,
which reads it at each call).

Strands 1.62 tags its metrics with ids unique per event-loop cycle and per tool call; the AWS
distro's ``awsemf`` exporter makes every attribute a CloudWatch dimension, so each cycle and each
call would be new custom metrics: :func:`bound_strands_metrics` drops those two ids and names a
tool the agents do not have (the model may ask for any name) ``_OTHER``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterable
from typing import IO, Any

from opentelemetry import _logs, metrics, trace

from agent.log_format import escape_controls

logger = logging.getLogger(__name__)

SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
REDACT_ALL = "gen_ai_unredacted_attributes="
MAX_CONSOLE_VALUE = 80
#: Attributes of Strands' metrics that are unique per event-loop cycle or per tool call.
UNBOUNDED_STRANDS_ATTRIBUTES = frozenset({"event_loop_cycle_id", "tool_use_id"})
#: The ``tool_name`` of Strands' tool metrics for a tool the agents do not have.
OTHER_TOOL = "_OTHER"


def configure(
    *, console: bool, capture_content: bool, out: IO[str] = sys.stdout, tool_names: Iterable[str] | None = None
) -> None:
    """Set up telemetry for the app process (call once, before the first agent is built).

    ``tool_names``: the tools the app's agents have; Strands' tool metrics name any other
    ``_OTHER`` (None: names kept as Strands records them).
    """
    if not capture_content:
        redact_content()
    if console:
        enable_console_export(out)
    bound_strands_metrics(tool_names)


def flush(timeout_millis: int = 5000) -> None:
    """Export what the SDK providers (ours or the distro's: spans, metrics, log records) still hold,
    within ``timeout_millis`` in all; nothing without an SDK.

    Called at shutdown: uvicorn re-raises SIGTERM once the app has stopped, so ``atexit``
    handlers (where the SDK would flush) never run in the AgentCore runtime or the local server.
    The SDK's batching processors ignore the timeout (opentelemetry-sdk 1.45 exports everything
    in the caller's thread): the flush runs in a daemon thread, left to the process's end if an
    export outlives ``timeout_millis``.
    """
    flushing = threading.Thread(target=_flush_providers, args=(timeout_millis,), name="telemetry-flush", daemon=True)
    flushing.start()
    flushing.join(timeout_millis / 1000)
    if flushing.is_alive():
        logger.warning("telemetry flush still exporting at its deadline; what it holds may be lost")


def _flush_providers(timeout_millis: int) -> None:
    deadline = time.monotonic() + timeout_millis / 1000
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            try:
                force_flush(max(0, int((deadline - time.monotonic()) * 1000)))
            except Exception:  # noqa: BLE001 - shutting down: telemetry must not block it
                logger.warning("telemetry flush failed", exc_info=True)


def redact_content() -> None:
    """Keep prompts, messages and tool results out of Strands' and the distro's GenAI spans."""
    os.environ[CAPTURE_MESSAGE_CONTENT] = "false"
    tokens = [t.strip() for t in os.environ.get(SEMCONV_OPT_IN, "").split(",") if t.strip()]
    if not any(t.startswith("gen_ai_unredacted_attributes=") for t in tokens):
        os.environ[SEMCONV_OPT_IN] = ",".join([*tokens, REDACT_ALL])


def bound_strands_metrics(tool_names: Iterable[str] | None = None) -> None:
    """Keep Strands' per-cycle and per-call ids (``UNBOUNDED_STRANDS_ATTRIBUTES``) out of its metrics.

    Wraps the instruments of Strands' ``MetricsClient`` singleton, which binds to the global meter
    provider current now: call it once the provider is set (``opentelemetry-instrument`` sets it
    before the app starts; without one, the API's proxy instruments follow a later provider).

    Args:
        tool_names: The tools the agents have; any other ``tool_name`` (the model may ask for any
            name) becomes ``OTHER_TOOL``. None keeps every name.
    """
    from strands.telemetry.metrics import MetricsClient

    known = None if tool_names is None else frozenset(tool_names)
    client = MetricsClient()
    for name, instrument in list(vars(client).items()):
        if isinstance(instrument, _BoundedInstrument):
            instrument.tool_names = known
        elif isinstance(instrument, (metrics.Counter, metrics.Histogram)):
            setattr(client, name, _BoundedInstrument(instrument, known))


class _BoundedInstrument:
    """A counter or histogram that drops ``UNBOUNDED_STRANDS_ATTRIBUTES`` from what it records
    and names unknown tools ``OTHER_TOOL``."""

    def __init__(self, instrument: Any, tool_names: frozenset[str] | None) -> None:
        self._instrument = instrument
        self.tool_names = tool_names

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._instrument.add(amount, self._bounded(attributes), context)

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._instrument.record(amount, self._bounded(attributes), context)

    def _bounded(self, attributes: Any) -> Any:
        if not attributes:
            return attributes
        kept = {k: v for k, v in attributes.items() if k not in UNBOUNDED_STRANDS_ATTRIBUTES}
        if self.tool_names is not None and "tool_name" in kept and kept["tool_name"] not in self.tool_names:
            kept["tool_name"] = OTHER_TOOL
        return kept


def enable_console_export(out: IO[str] = sys.stdout) -> None:
    """Print spans and metrics on ``out`` (added to an SDK provider already installed, if any)."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError as exc:  # pragma: no cover - strands-agents depends on the SDK today
        raise RuntimeError("AGENT_OTEL_CONSOLE needs the opentelemetry-sdk package: pip install '.[otel]'") from exc
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "agent-memory")})
    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, TracerProvider):
        tracer_provider = TracerProvider(resource=resource)
        trace.set_tracer_provider(tracer_provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=format_span)))
    if isinstance(metrics.get_meter_provider(), MeterProvider):
        logger.info("console export: spans only (an SDK meter provider is already installed)")
        return
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=out, formatter=format_metrics))
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=resource))


def format_span(span: Any) -> str:
    """One line: name, ids (trace, span, parent, links), duration, status and attributes."""
    ctx = span.context
    parent = trace.format_span_id(span.parent.span_id) if span.parent else "-"
    links = ",".join(trace.format_span_id(link.context.span_id) for link in span.links) or "-"
    duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    status = span.status.status_code.name + (f":{span.status.description}" if span.status.description else "")
    attributes = " ".join(f"{k}={_short(v)}" for k, v in sorted((span.attributes or {}).items()))
    return (
        f"span {span.name!r} trace={trace.format_trace_id(ctx.trace_id)} id={trace.format_span_id(ctx.span_id)} "
        f"parent={parent} links={links} {duration:.1f}ms {status} {attributes}\n"
    )


def format_metrics(data: Any) -> str:
    """One line per data point: name, attributes and value (sum, or count and sum)."""
    lines = []
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    labels = ",".join(f"{k}={v}" for k, v in sorted(point.attributes.items()))
                    value = f"count={point.count} sum={point.sum:.4g}" if hasattr(point, "count") else f"value={point.value}"
                    lines.append(f"metric {metric.name}{{{labels}}} {value}\n")
    return "".join(lines)


def _short(value: Any) -> str:
    text = escape_controls(str(value))  # model-written values (tool names) reach the terminal
    return text if len(text) <= MAX_CONSOLE_VALUE else text[: MAX_CONSOLE_VALUE - 1] + "…"
