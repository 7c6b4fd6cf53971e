"""One POST through the app's body middlewares, its body in chunks, without a server."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from starlette.responses import JSONResponse

from agent.errors import AppError
from agent.json_body import JsonBodyMiddleware

Asgi = Callable[..., Any]


def post_chunks(
    chunks: list[bytes], headers: list[tuple[bytes, bytes]] | None = None, wrap: Callable[[Asgi], Asgi] = lambda app: app
) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Send ``chunks`` as one request through ``wrap(JsonBodyMiddleware(app))``; returns the body
    the innermost app read (empty if the request never reached it) and the messages sent back."""
    seen: list[bytes] = []
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((await receive())["body"])
        await JSONResponse({"ok": True})(scope, receive, send)

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def on_error(exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return JSONResponse(exc.body(), status_code=exc.status_code)

    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers or []}
    asyncio.run(wrap(JsonBodyMiddleware(app, on_error))(scope, receive, send))
    return seen, sent
