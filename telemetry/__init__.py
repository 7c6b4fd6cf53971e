"""This project's OpenTelemetry instrumentation primitives, through the OpenTelemetry API only.

Neutral ground for every package that emits telemetry: ``memory`` (its spans and metrics in
``memory.telemetry``) and ``auth`` (``auth.metrics``) build on it, and it imports neither, so
``auth`` does not depend on ``memory``. Nothing here configures an SDK or an exporter (the app
does that in ``agent.observability``): without one every call is the API's no-op; the tracer and
every package's instruments follow the global providers (re-read when those change).

A failure sets a span's status to ERROR with the exception's type name, never its message, and
attributes keep short scalar values only (:func:`clean`).
"""

from telemetry.providers import SCOPE, Instruments, tracer
from telemetry.spans import (
    ERROR_TYPE,
    MAX_STRING_ATTRIBUTE,
    OUTCOME,
    TENANT,
    Attributes,
    annotate,
    background_span,
    clean,
    current_span,
    record_error,
    span,
    traced,
)

__all__ = [
    "ERROR_TYPE",
    "MAX_STRING_ATTRIBUTE",
    "OUTCOME",
    "SCOPE",
    "TENANT",
    "Attributes",
    "Instruments",
    "annotate",
    "background_span",
    "clean",
    "current_span",
    "record_error",
    "span",
    "traced",
    "tracer",
]
