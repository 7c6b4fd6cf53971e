"""ASGI middleware that refuses request bodies over a byte limit with the app's 413 JSON error."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.errors import PayloadTooLarge
from agent.json_body import ErrorResponse


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Rejects ``/invocations`` bodies larger than ``max_bytes`` before anything parses them,
    answering ``on_error(PayloadTooLarge(...))`` (the app's one error response)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, on_error: ErrorResponse, paths: tuple[str, ...] = ("/invocations",)
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_error = on_error
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"the request body exceeds {self.max_bytes} bytes")
        await self.on_error(error)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
