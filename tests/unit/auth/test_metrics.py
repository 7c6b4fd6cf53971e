"""auth.metrics: a rejected token is counted by reason and noted on the current span, never its value."""

from __future__ import annotations

import telemetry
from auth.metrics import token_rejected
from tests.support.otel import capture_telemetry


def test_rejections_are_counted_by_reason_and_marked_on_the_span() -> None:
    token_rejected("expired")  # no SDK: a no-op
    with capture_telemetry() as captured:
        with telemetry.span("auth.verify_token"):
            token_rejected("bad_signature")
        token_rejected("bad_signature")
        token_rejected("expired")
    assert captured.total("auth.token.failures", **{"auth.failure.reason": "bad_signature"}) == 2
    assert captured.total("auth.token.failures") == 3
    span = captured.one("auth.verify_token")
    assert dict(span.attributes) == {"auth.failure.reason": "bad_signature", "memory.outcome": "rejected"}
