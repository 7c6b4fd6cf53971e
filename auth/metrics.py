"""Telemetry of bearer-token verification, on the neutral ``telemetry`` package (never ``memory``).

Span ``auth.verify_token`` (opened by :meth:`auth.verifier.TokenVerifier.verify`): ``auth.token.use``
and the tenant when a token is accepted; ``auth.failure.reason`` and ``memory.outcome=rejected``
when it is not. Metric ``auth.token.failures`` counts rejected tokens by ``auth.failure.reason``
(a fixed reason code: never the token, a claim or a header value).
"""

from __future__ import annotations

from opentelemetry import metrics

import telemetry

#: Attribute and metric dimension naming why a token was rejected (an ``auth.errors.Reason``).
REASON = "auth.failure.reason"


def _create_failures(meter: metrics.Meter) -> metrics.Counter:
    return meter.create_counter("auth.token.failures", unit="{token}", description="Rejected bearer tokens by reason")


_failures = telemetry.Instruments(_create_failures)


def token_rejected(reason: str) -> None:
    """Count a rejected bearer token by ``reason`` and note it on the current span."""
    _failures.get().add(1, {REASON: reason})
    telemetry.annotate(telemetry.current_span(), {REASON: reason, telemetry.OUTCOME: "rejected"})
