"""ASGI middleware that answers an ``/invocations`` body that is not JSON with the app's own 400.

The AgentCore SDK parses the body before the entrypoint runs and answers a JSONDecodeError or a
UnicodeDecodeError in its own shape, ``{"error": "Invalid JSON", "details": ...}`` (read in
bedrock-agentcore 1.25, ``BedrockAgentCoreApp._handle_invocation``); deep nesting
(RecursionError) and huge integer literals (ValueError) escape it altogether. This middleware
reads the body first (inside the size limit), checks that it parses, and hands it to the app
unchanged; a body that does not parse gets ``on_error(BadRequest(..., field="$"))``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.errors import BadRequest

logger = logging.getLogger(__name__)

ErrorResponse = Callable[[Exception], Response]


class JsonBodyMiddleware:
    """Refuses ``/invocations`` bodies that are not a JSON document before the SDK parses them."""

    def __init__(self, app: ASGIApp, on_error: ErrorResponse, paths: tuple[str, ...] = ("/invocations",)) -> None:
        self.app = app
        self.on_error = on_error
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its body
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            json.loads(body)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            logger.warning("request body rejected: %s", type(exc).__name__)
            error = BadRequest("the request body is not a usable JSON document", field="$")
            await self.on_error(error)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that first returns the whole buffered body, then whatever ``receive`` returns."""
    first: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def replayed() -> Message:
        nonlocal first
        if first is not None:
            message, first = first, None
            return message
        return await receive()

    return replayed
