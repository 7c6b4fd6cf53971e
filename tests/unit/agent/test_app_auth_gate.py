"""The auth gate runs before the body is read: no/invalid token -> the same 401 whatever the body;
WebSocket handshakes need a valid token too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from agent.auth_gate import IDENTITY_SCOPE_KEY, WS_POLICY_VIOLATION, AuthGateMiddleware
from auth import Identity
from auth.dev_issuer import DevIssuer
from tests.unit.agent.test_app import SESSION, SID, bearer, harness, issuer  # noqa: F401 - fixtures

ALICE = Identity(tenant_id="tenant-a", user_id="alice")
BODIES = [
    (b"{not json", "application/json"),
    (b"[" * 3000 + b"]" * 3000, "application/json"),  # over the 2048-byte limit as well
    (b"x" * 100_000, "application/octet-stream"),
    (b"prompt=hi", "application/x-www-form-urlencoded"),
    (b"", "text/plain"),
]


@pytest.mark.parametrize(("body", "content_type"), BODIES)
def test_no_or_bad_token_is_the_same_401_whatever_the_body(harness, tmp_path: Path, body: bytes, content_type: str) -> None:
    client, made, _ = harness
    forged = DevIssuer(tmp_path / "rogue").mint("tenant-a", "alice")
    answers = []
    for auth in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": f"Bearer {forged}"}):
        response = client.post(
            "/invocations", content=body, headers={"content-type": content_type, SESSION: SID, **auth}
        )
        assert response.status_code == 401, (auth, response.text)
        assert response.headers["content-type"].startswith("application/json")
        answers.append(response.json())
    assert {a["error"] for a in answers} == {"unauthorized"}
    assert len({json.dumps(a) for a in answers[1:]}) == 1  # a bad token: one generic answer
    assert made == {}


def test_valid_token_and_invalid_json_is_a_400_about_the_body(harness, issuer: DevIssuer) -> None:  # noqa: F811
    client, made, _ = harness
    response = client.post("/invocations", content=b"{not json", headers={**bearer(issuer), "content-type": "application/json"})
    assert response.status_code == 400
    assert "json" in response.text.lower()
    assert made == {}


def test_valid_token_and_huge_body_is_413(harness, issuer: DevIssuer) -> None:  # noqa: F811
    client, _, _ = harness
    response = client.post("/invocations", content=b"x" * 100_000, headers=bearer(issuer))
    assert response.status_code == 413


def test_ping_needs_no_token(harness) -> None:
    client, _, _ = harness
    assert client.get("/ping").status_code == 200


async def _call(gate: AuthGateMiddleware, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b""}
    await gate(scope, receive, send)
    return sent


async def test_the_gate_answers_without_reading_the_body_and_hands_over_the_identity() -> None:
    seen: list[object] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope.get(IDENTITY_SCOPE_KEY))
        await JSONResponse({"ok": True})(scope, receive, send)

    async def authenticate(headers: Headers) -> Identity:
        if headers.get("authorization") != "Bearer good":
            raise PermissionError("no")
        return ALICE

    gate = AuthGateMiddleware(app, authenticate, lambda exc: JSONResponse({"error": type(exc).__name__}, 401))
    refused = await _call(gate, "/invocations", [(b"authorization", b"Bearer bad")])
    assert refused[0]["status"] == 401 and seen == []
    accepted = await _call(gate, "/invocations", [(b"authorization", b"Bearer good")])
    assert accepted[0]["status"] == 200 and seen == [ALICE]
    ungated = await _call(gate, "/ping", [])
    assert ungated[0]["status"] == 200 and seen == [ALICE, None]


@pytest.mark.parametrize("auth", [{}, {"Authorization": "Bearer not-a-jwt"}])
def test_the_sdk_websocket_route_needs_a_valid_token(harness, auth: dict[str, str]) -> None:
    """The SDK registers /ws on every app; without a token the handshake is refused (1008)."""
    client, made, _ = harness
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/ws", headers=auth):
            pass
    assert info.value.code == WS_POLICY_VIOLATION and made == {}


def test_a_valid_token_reaches_the_websocket_route(harness, issuer: DevIssuer) -> None:  # noqa: F811
    client, _, _ = harness
    with pytest.raises(WebSocketDisconnect) as info:
        with client.websocket_connect("/ws", headers=bearer(issuer)):
            pass
    assert info.value.code == 1011  # past the gate: the SDK's "no WebSocket handler defined"


async def _handshake(gate: AuthGateMiddleware, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await gate({"type": "websocket", "path": path, "headers": headers, "query_string": b""}, receive, send)
    return sent


async def test_websocket_scopes_are_gated_and_other_paths_refused() -> None:
    seen: list[object] = []

    async def app(scope, receive, send) -> None:
        seen.append(scope.get(IDENTITY_SCOPE_KEY))
        await send({"type": "websocket.accept"})

    async def authenticate(headers: Headers) -> Identity:
        if headers.get("authorization") != "Bearer good":
            raise PermissionError("no")
        return ALICE

    gate = AuthGateMiddleware(app, authenticate, lambda exc: JSONResponse({}, 401))
    good = [(b"authorization", b"Bearer good")]
    assert await _handshake(gate, "/ws", [(b"authorization", b"Bearer bad")]) == [{"type": "websocket.close", "code": 1008}]
    assert await _handshake(gate, "/other", good) == [{"type": "websocket.close", "code": 1008}]
    assert seen == []
    assert await _handshake(gate, "/ws", good) == [{"type": "websocket.accept"}]
    assert seen == [ALICE]
