"""BodyLimitMiddleware at its limit: a body of exactly ``max_bytes`` is accepted, one byte more is
a 413, whether the size is declared (Content-Length) or only counted as chunks arrive (chunked
transfer, no Content-Length)."""

from __future__ import annotations

import json

import pytest
from starlette.types import Message, Receive, Scope, Send

from agent.app import _error
from agent.body_limit import BodyLimitMiddleware

LIMIT = 1000


async def _post(chunks: list[bytes], *, declared: bool) -> tuple[list[Message], bytes | None]:
    """Send ``chunks`` to an app that reads the whole body; returns what went back to the client
    and the body the app read (None if it never got all of it)."""
    read: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        read.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive() -> Message:
        return pending.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-length", str(sum(map(len, chunks))).encode())] if declared else []
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers, "query_string": b""}
    await BodyLimitMiddleware(app, LIMIT, on_error=_error)(scope, receive, send)
    return sent, read[0] if read else None


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_a_413(declared: bool) -> None:
    chunks = [b"x" * 400, b"x" * 400, b"x" * 200]
    sent, read = await _post(chunks, declared=declared)
    assert sent[0]["status"] == 200 and read == b"x" * LIMIT
    sent, read = await _post([*chunks, b"x"], declared=declared)
    assert sent[0]["status"] == 413 and read is None
    assert json.loads(sent[1]["body"])["error"] == "payload_too_large"
