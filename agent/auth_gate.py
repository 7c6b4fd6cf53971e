"""ASGI middleware that verifies the bearer token before anything reads the request body.

A request to a gated path without a valid token gets the error response (401) whatever its
body, size or content type: the body is never read, parsed or size-checked. The verified
Identity is handed to the app in the ASGI scope under ``IDENTITY_SCOPE_KEY``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import Identity

#: Where the verified Identity is stored in the request's ASGI scope.
IDENTITY_SCOPE_KEY = "agent.identity"

Authenticate = Callable[[Headers], Awaitable[Identity]]
ErrorResponse = Callable[[Exception], Response]


class AuthGateMiddleware:
    """Runs ``authenticate`` on the request headers of ``paths``; answers ``on_error(exc)`` if it raises."""

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Authenticate,
        on_error: ErrorResponse,
        paths: tuple[str, ...] = ("/invocations",),
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.on_error = on_error
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        try:
            identity = await self.authenticate(Headers(scope=scope))
        except Exception as exc:  # noqa: BLE001 - every failure becomes the mapped error response
            await self.on_error(exc)(scope, receive, send)
            return
        scope[IDENTITY_SCOPE_KEY] = identity
        await self.app(scope, receive, send)
