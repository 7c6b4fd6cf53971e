"""End to end over HTTP against the real server process (echo model, local backend, dev tokens)."""

from __future__ import annotations

import json
import socket
import time
from typing import Callable

import httpx

from auth.dev_issuer import DevIssuer
from tests.e2e.conftest import new_session, stored

Fresh = Callable[[str], str]
from tests.e2e.server import SESSION_HEADER, AgentServer

FACT = "My favourite colour is teal."
QUESTION = "What is my favourite colour?"


def remember(server: AgentServer, token: str, fact: str = FACT) -> str:
    sid = new_session()
    first = server.invoke(token, {"prompt": fact}, sid)
    assert first.status_code == 200, first.text
    end = server.invoke(token, {"end_session": True}, sid)
    assert end.status_code == 200 and end.json()["session_ended"] is True
    server.wait_idle()
    return sid


def test_no_or_invalid_token_is_401(server: AgentServer, tmp_path) -> None:
    forged = DevIssuer(tmp_path / "rogue").mint("tenant-001", "alice")
    for token in (None, "garbage", forged):
        response = server.invoke(token, {"prompt": "hi"}, new_session())
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


def test_malformed_payload_is_400_naming_the_field(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    token = issuer.mint(ids("tenant-001"), ids("alice"))
    response = server.invoke(token, {"prompt": "hi", "end_session": "please"}, new_session())
    assert response.status_code == 400 and response.json()["field"] == "end_session"
    missing = server.invoke(token, {"stream": False}, new_session())
    assert missing.status_code == 400 and missing.json()["field"] == "prompt"
    bad_json = httpx.post(
        f"{server.url}/invocations", content=b"{not json", headers={"Authorization": f"Bearer {token}"}
    )
    assert bad_json.status_code == 400


def test_recall_in_a_new_session_and_mid_turn(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    token = issuer.mint(ids("tenant-001"), ids("alice"))
    remember(server, token)
    memories = stored(server.state_dir, ids("tenant-001"), ids("alice"))
    assert [m.content for m in memories] == [FACT]

    sid = new_session()
    body = server.invoke(token, {"prompt": QUESTION}, sid).json()
    (used,) = body["memories_used"]  # one unit of that conversation (keys derive from its summary's)
    assert used.startswith(memories[0].id)
    assert body["answer"].startswith(f"ECHO: {QUESTION} | MEMORY: <memory_context>")
    assert FACT in body["answer"]
    # Still injected on a later turn of the same conversation, and the recall tool works mid-turn.
    later = server.invoke(token, {"prompt": "and again?"}, sid).json()
    assert FACT in later["answer"]
    recalled = server.invoke(token, {"prompt": "recall: favourite colour"}, sid).json()
    assert FACT in recalled["answer"] and recalled["memories_used"][0] == used
    assert all(key.startswith(memories[0].id) for key in recalled["memories_used"])


def test_tenant_and_user_isolation(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    remember(server, issuer.mint(ids("tenant-iso-a"), ids("carol")), "My locker code is 4711.")
    question = {"prompt": "What is my locker code?"}
    own = server.invoke(issuer.mint(ids("tenant-iso-a"), ids("carol")), question, new_session()).json()
    assert own["memories_used"] and "4711" in own["answer"]
    for tenant, user in (("tenant-iso-b", "carol"), ("tenant-iso-a", "dave")):
        other = server.invoke(issuer.mint(ids(tenant), ids(user)), question, new_session()).json()
        assert other["memories_used"] == [] and other["answer"].endswith("MEMORY: none"), (tenant, user)
        recall = server.invoke(issuer.mint(ids(tenant), ids(user)), {"prompt": "recall: locker code"}, new_session()).json()
        assert "4711" not in recall["answer"]


def test_identity_comes_from_the_token(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    remember(server, issuer.mint(ids("tenant-who"), ids("erin")), "My passport number is X123.")
    mallory = issuer.mint(ids("tenant-who"), ids("mallory"))
    for lie in ({"user_id": "erin"}, {"tenant_id": "tenant-other"}, {"tenantId": "tenant-who", "userId": "erin"}):
        response = server.invoke(mallory, {"prompt": "What is my passport number?", **lie}, new_session())
        assert response.status_code == 403, lie
    honest = server.invoke(mallory, {"prompt": "What is my passport number?"}, new_session()).json()
    assert honest["memories_used"] == [] and "X123" not in honest["answer"]


def test_another_user_cannot_join_an_open_session(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    sid = new_session()
    assert server.invoke(issuer.mint(ids("tenant-001"), ids("frank")), {"prompt": "hi"}, sid).status_code == 200
    intruder = server.invoke(issuer.mint(ids("tenant-001"), ids("grace")), {"prompt": "hi"}, sid)
    assert intruder.status_code == 403


def test_end_session_stores_exactly_one_summary(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    token = issuer.mint(ids("tenant-one"), ids("heidi"))
    sid = new_session()
    for prompt in ("I live in Lisbon.", "I work as a pilot."):
        assert server.invoke(token, {"prompt": prompt}, sid).status_code == 200
    final = server.invoke(token, {"prompt": "I have two cats.", "end_session": True}, sid)
    assert final.status_code == 200 and final.json()["session_ended"] is True
    server.wait_idle()
    memories = stored(server.state_dir, ids("tenant-one"), ids("heidi"))
    summaries = [m for m in memories if m.conversation_id == sid]
    assert len(memories) == 1 and len(summaries) == 1
    assert all(fact in summaries[0].content for fact in ("Lisbon", "pilot", "two cats"))


def test_streaming_answer(server: AgentServer, issuer: DevIssuer, ids: Fresh) -> None:
    token = issuer.mint(ids("tenant-001"), ids("ivan"))
    with httpx.stream(
        "POST",
        f"{server.url}/invocations",
        json={"prompt": "stream please", "stream": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert "".join(e.get("data", "") for e in events if "data" in e).startswith("ECHO: stream please")
    assert events[-1]["done"] is True and events[-1]["memories_used"] == []


def _post_and_hang_up(server: AgentServer, token: str, payload: dict, session_id: str) -> None:
    """Send a complete request on a raw socket and close it before reading any of the response."""
    body = json.dumps(payload).encode()
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n{SESSION_HEADER}: {session_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + body)


def test_a_stream_abandoned_by_its_client_releases_the_session(tmp_path) -> None:
    own = AgentServer(tmp_path).start()  # its own server: the test ends with a shutdown
    try:
        token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-001", "leah")
        sid = new_session()
        for _ in range(3):
            _post_and_hang_up(own, token, {"prompt": "stream and vanish", "stream": True}, sid)
        deadline = time.monotonic() + 30  # a liveness bound (a busy CI host), not a timing claim
        while (status := own.invoke(token, {"prompt": "still mine?"}, sid).status_code) == 409:
            assert time.monotonic() < deadline, "the abandoned stream still holds the session"
            time.sleep(0.05)
        assert status == 200
        assert own.terminate(timeout=30) in (0, -15), own.log()  # a stalled shutdown times out
        log = own.log()
        assert "did not end before the shutdown deadline" not in log
        # structured log lines carry their extra= fields (and never the token)
        assert f"session ended session_id={sid}" in log
        assert "operation=invoke" in log and "tenant=tenant-001" in log and "latency_ms=" in log
        assert token.split(".")[2][:16] not in log
    finally:
        own.stop()
