"""Spans: created only while a tracer provider is set, failures recorded by type name only.

Attributes carry identifiers, counts, scores, outcomes and ``error.type`` only: never memory
text, prompts, transcripts, tokens, credentials or raw user ids. The shared attribute names keep
the ``memory.`` prefix they had before this package was split out of ``memory.telemetry``: they
are what exported traces and dashboards already use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ContextManager, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from telemetry.providers import tracer

#: The tenant an operation is for (spans only, never a metric dimension).
TENANT = "memory.tenant.id"
#: How an operation ended, e.g. ``rejected``, ``stored``, ``done``.
OUTCOME = "memory.outcome"
#: The exception's type name on a failed span or measurement.
ERROR_TYPE = "error.type"
#: Longest string attribute value kept (identifiers are short; anything longer is dropped).
MAX_STRING_ATTRIBUTE = 256

Attributes = Mapping[str, Any]
F = TypeVar("F", bound=Callable[..., Any])


def clean(attributes: Attributes | None) -> dict[str, Any]:
    """Attributes fit for a span: None dropped, long strings dropped, only OTel value types kept."""
    kept: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if isinstance(value, (bool, int, float)):
            kept[key] = value
        elif isinstance(value, str) and len(value) <= MAX_STRING_ATTRIBUTE:
            kept[key] = value
    return kept


def annotate(span: Span, attributes: Attributes) -> None:
    """Set ``attributes`` (cleaned) on ``span`` when it records."""
    if span.is_recording():
        span.set_attributes(clean(attributes))


def record_error(span: Span, exc: BaseException) -> None:
    """Mark ``span`` failed with the exception's type name only (its message may carry data)."""
    if span.is_recording():
        name = type(exc).__qualname__
        span.set_attribute(ERROR_TYPE, name)
        span.set_status(Status(StatusCode.ERROR, name))


class _Unrecorded:
    """The context manager of a span while no tracer provider is set: nothing to record."""

    def __enter__(self) -> Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_UNRECORDED = _Unrecorded()


def span(
    name: str,
    attributes: Attributes | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    links: Sequence[Link] = (),
    root: bool = False,
) -> ContextManager[Span]:
    """A span, current inside the block (a new trace with ``root``); an exception marks it failed.

    Without a tracer provider (no SDK) this is a constant no-op context manager.
    """
    current_tracer = tracer()
    if current_tracer is None:
        return _UNRECORDED
    return _recorded_span(current_tracer, name, attributes, kind, links, root)


@contextmanager
def _recorded_span(
    current_tracer: trace.Tracer,
    name: str,
    attributes: Attributes | None,
    kind: SpanKind,
    links: Sequence[Link],
    root: bool,
) -> Iterator[Span]:
    with current_tracer.start_as_current_span(
        name,
        context=otel_context.Context() if root else None,
        kind=kind,
        attributes=clean(attributes),
        links=links,
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except Exception as exc:
            record_error(current, exc)
            raise


@contextmanager
def background_span(name: str, attributes: Attributes | None = None) -> Iterator[Span]:
    """The root of a new trace for background work, linked to the span current here (its cause).

    The cause's ids are also set as ``memory.cause.trace_id`` / ``memory.cause.span_id`` for
    backends that do not show span links.
    """
    cause = trace.get_current_span().get_span_context()
    attrs = dict(attributes or {})
    links: list[Link] = []
    if cause.is_valid:
        links.append(Link(cause))
        attrs["memory.cause.trace_id"] = trace.format_trace_id(cause.trace_id)
        attrs["memory.cause.span_id"] = trace.format_span_id(cause.span_id)
    with span(name, attrs, links=links, root=True) as current:
        yield current


def traced(name: str, attributes: Callable[..., Attributes] | None = None) -> Callable[[F], F]:
    """Decorator: each call runs in :func:`span` ``name``; ``attributes(*args, **kwargs)`` names it.

    ``attributes`` receives the decorated function's arguments (``self`` first for methods) and
    is only called when the span records.
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(name) as current:
                if attributes is not None and current.is_recording():
                    annotate(current, attributes(*args, **kwargs))
                return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def current_span() -> Span:
    """The span current in this context (a non-recording one when there is none)."""
    return trace.get_current_span()
