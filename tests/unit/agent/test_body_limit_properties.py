"""Property-based tests of the body size limit in front of the JSON body check (agent.body_limit)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.app import _error
from agent.body_limit import BodyLimitMiddleware
from tests.support.asgi_body import post_chunks

LIMIT = 64
CHUNKS = st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"{}", b'{"prompt": "hi"}', b"[1,", b"2]", b" "])), min_size=1, max_size=6)
#: A Content-Length that may be absent, true, or a lie in either direction (or not a number).
DECLARED = st.one_of(st.none(), st.just("true"), st.integers(-5, 200).map(str), st.sampled_from(["abc", "", "1e3"]))


def _serve(chunks: list[bytes], declared: str | None) -> tuple[list[bytes], list[dict[str, Any]]]:
    """One request through BodyLimitMiddleware(JsonBodyMiddleware(app)); what the app read, what was sent."""
    total = sum(map(len, chunks))
    length = [] if declared is None else [(b"content-length", (str(total) if declared == "true" else declared).encode())]
    return post_chunks(chunks, length, wrap=lambda app: BodyLimitMiddleware(app, max_bytes=LIMIT, on_error=_error))


@settings(derandomize=True, max_examples=200, deadline=None)
@given(CHUNKS, DECLARED)
def test_a_body_over_the_limit_is_a_413_and_any_other_reaches_the_json_check_whole(chunks: list[bytes], declared: str | None) -> None:
    """Whatever the chunks and the declared Content-Length: a body over the limit (or declared
    over it) is answered 413 and never reaches the app; any other body is the JSON check's to
    judge, whole and unchanged (the app reads it, or it is the JSON 400)."""
    body = b"".join(chunks)
    seen, sent = _serve(chunks, declared)
    status = sent[0]["status"]
    declared_over = declared is not None and declared.lstrip("-").isdigit() and int(declared) > LIMIT
    if len(body) > LIMIT or declared_over:
        assert status == 413 and seen == []
        assert json.loads(sent[1]["body"])["error"] == "payload_too_large"
        return
    try:
        json.loads(body)
    except ValueError:
        assert status == 400 and seen == []
        return
    assert status == 200 and seen == [body]
