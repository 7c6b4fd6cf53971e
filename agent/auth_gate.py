"""ASGI middleware that verifies the bearer token before anything reads the request body.

A request to a gated path without a valid token gets the error response (401) whatever its
body, size or content type: the body is never read, parsed or size-checked. The verified
Identity is handed to the app in the ASGI scope under ``IDENTITY_SCOPE_KEY``.

WebSocket connections are gated the same way: the AgentCore SDK registers ``/ws`` on every app
(``BedrockAgentCoreApp``, bedrock-agentcore 1.25), so a handler added later is reached only
with a valid token. A handshake without one, or to any other path, is closed before it is
accepted (code 1008, policy violation; servers answer the upgrade with HTTP 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import Identity

#: Where the verified Identity is stored in the request's ASGI scope.
IDENTITY_SCOPE_KEY = "agent.identity"
#: WebSocket close code for a refused handshake (RFC 6455 "policy violation").
WS_POLICY_VIOLATION = 1008

Authenticate = Callable[[Headers], Awaitable[Identity]]
ErrorResponse = Callable[[Exception], Response]


class AuthGateMiddleware:
    """Runs ``authenticate`` on the headers of HTTP requests to ``paths`` (``on_error(exc)`` if it
    raises) and of WebSocket handshakes to ``websocket_paths`` (closed with 1008 if it raises);
    handshakes to other paths are closed too."""

    def __init__(
        self,
        app: ASGIApp,
        authenticate: Authenticate,
        on_error: ErrorResponse,
        paths: tuple[str, ...] = ("/invocations",),
        websocket_paths: tuple[str, ...] = ("/ws",),
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.on_error = on_error
        self.paths = paths
        self.websocket_paths = websocket_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        identity = None
        if scope["path"] in self.websocket_paths:
            try:
                identity = await self.authenticate(Headers(scope=scope))
            except Exception:  # noqa: BLE001 - any failure refuses the handshake
                identity = None
        if identity is None:
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
            return
        scope[IDENTITY_SCOPE_KEY] = identity
        await self.app(scope, receive, send)
