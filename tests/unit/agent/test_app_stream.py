"""a1: a streamed request releases its session even if the client leaves before reading it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.types import Message

from agent.app import create_app
from agent.orchestrator import build_conversation
from agent.services import Services
from agent.sessions import SessionRegistry
from agent.settings import Settings
from auth.dev_issuer import DevIssuer
from tests.support.scripted_model import EchoModel

SID = "stream-leak-0123456789abcdef0123456789"


def _scope(token: str, body: bytes) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/invocations", "raw_path": b"/invocations",
        "query_string": b"", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
        "headers": [
            (b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode()),
            (b"x-amzn-bedrock-agentcore-runtime-session-id", SID.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
    }


async def _call(app: Any, token: str, payload: dict[str, Any], *, hang_up: bool) -> list[Message]:
    body = json.dumps(payload).encode()
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop()
        if hang_up:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(_scope(token, body), receive, send)
    return sent


async def test_a_stream_never_read_does_not_keep_the_session(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path / "issuer")
    ended: list[str] = []

    def conversation(conversation_id: str, owner: tuple[str, str]) -> Any:
        conv = build_conversation(EchoModel(), None)
        conv.end_conversation = lambda: ended.append(conversation_id)  # type: ignore[method-assign]
        return conv

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(conversation, max_sessions=4, idle_timeout_seconds=60)
        return Services(settings, issuer.verifier(), registry)

    settings = Settings(auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, memory_enabled=False)
    app = create_app(settings, services_factory=services_factory)
    token = issuer.mint("tenant-a", "alice")
    async with app.router.lifespan_context(app):
        abandoned = await _call(app, token, {"prompt": "hello", "stream": True}, hang_up=True)
        assert abandoned[0]["status"] == 200
        deadline = asyncio.get_running_loop().time() + 30  # the abandoned turn finishes on its own
        while True:
            answer = await asyncio.wait_for(_call(app, token, {"prompt": "again"}, hang_up=False), 30)
            if answer[0]["status"] != 409 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        assert answer[0]["status"] == 200, answer
        assert json.loads(answer[1]["body"])["answer"].startswith("ECHO: again")
    assert ended == [SID]  # shutdown ended the session (it did not wait on a held lock)
