"""The `WorkloadAccessToken` header (what `agentcore invoke --local` sends): dev mode only, still verified."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from starlette.testclient import TestClient

from agent.app import create_app
from agent.orchestrator import build_conversation
from agent.services import Services
from agent.sessions import SessionRegistry
from agent.settings import Settings
from auth.dev_issuer import DevIssuer
from tests.support.scripted_model import EchoModel

SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
SID = "local-session-0123456789abcdef0123456789abcdef"
WORKLOAD = "WorkloadAccessToken"


class Recording:
    """Wraps a conversation and records the identity state each turn received."""

    def __init__(self, inner: Any, states: list[dict[str, Any]]) -> None:
        self.inner = inner
        self.states = states

    async def ask(self, prompt: str, state: dict[str, Any]) -> str:
        self.states.append(dict(state))
        return await self.inner.ask(prompt, state)

    def memories_used(self) -> list[str]:
        return []

    def end_conversation(self) -> None:
        pass


@pytest.fixture()
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "issuer")


def _client(
    mode: Literal["dev", "cognito"], issuer: DevIssuer, tmp_path: Path, states: list[dict[str, Any]]
) -> TestClient:
    auth: dict[str, Any] = {"dev_issuer_dir": issuer.state_dir}
    if mode == "cognito":
        auth = {"cognito_user_pool_id": "us-east-1_TestPool", "cognito_client_ids": ("dev-client",)}
    settings = Settings(auth_mode=mode, state_dir=tmp_path, memory_enabled=False, **auth)

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        # The dev issuer's verifier in both modes: in cognito mode it would accept the token,
        # so a 401 there can only come from ignoring the header.
        registry = SessionRegistry(
            lambda c, o: Recording(build_conversation(EchoModel(), None), states), max_sessions=4,
            idle_timeout_seconds=60,
        )
        return Services(settings, issuer.verifier(), registry)

    return TestClient(create_app(settings, services_factory=services_factory))


@pytest.fixture()
def dev(issuer: DevIssuer, tmp_path: Path) -> Iterator[tuple[TestClient, list[dict[str, Any]]]]:
    states: list[dict[str, Any]] = []
    with _client("dev", issuer, tmp_path, states) as client:
        yield client, states


def _forged(token: str) -> str:
    head, body, signature = token.split(".")
    return ".".join((head, body, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")))


def test_dev_mode_accepts_a_valid_token_and_takes_identity_from_it(dev, issuer: DevIssuer) -> None:
    client, states = dev
    token = issuer.mint("tenant-001", "alice")  # the toolkit sends the bare JWT, no "Bearer "
    response = client.post("/invocations", json={"prompt": "hello"}, headers={WORKLOAD: token, SESSION: SID})
    assert response.status_code == 200, response.text
    assert response.json()["answer"].startswith("ECHO: hello")
    assert [(s["tenant_context"], s["user_id"]) for s in states] == [("tenant-001", "alice")]


@pytest.mark.parametrize("bad", ["forged", "expired", "garbage"])
def test_dev_mode_rejects_an_invalid_token_with_401(dev, issuer: DevIssuer, bad: str) -> None:
    client, states = dev
    token = {
        "forged": _forged(issuer.mint("tenant-001", "alice")),
        "expired": issuer.mint("tenant-001", "alice", ttl=-60),
        "garbage": "not-a-jwt",
    }[bad]
    response = client.post("/invocations", json={"prompt": "hello"}, headers={WORKLOAD: token, SESSION: SID})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert states == []


def test_a_token_from_another_issuer_is_rejected(dev, tmp_path: Path) -> None:
    client, states = dev
    stranger = DevIssuer(tmp_path / "other-issuer").mint("tenant-001", "alice")
    response = client.post("/invocations", json={"prompt": "x"}, headers={WORKLOAD: stranger, SESSION: SID})
    assert response.status_code == 401 and states == []


def test_authorization_header_wins_over_the_workload_header(dev, issuer: DevIssuer) -> None:
    client, states = dev
    headers = {
        "Authorization": f"Bearer {_forged(issuer.mint('tenant-001', 'alice'))}",
        WORKLOAD: issuer.mint("tenant-002", "bob"),
        SESSION: SID,
    }
    assert client.post("/invocations", json={"prompt": "x"}, headers=headers).status_code == 401
    assert states == []


def test_cognito_mode_ignores_the_workload_header(issuer: DevIssuer, tmp_path: Path) -> None:
    states: list[dict[str, Any]] = []
    token = issuer.mint("tenant-001", "alice")
    with _client("cognito", issuer, tmp_path, states) as client:
        ignored = client.post("/invocations", json={"prompt": "x"}, headers={WORKLOAD: token, SESSION: SID})
        assert ignored.status_code == 401 and states == []
        # the same token in Authorization is accepted: the header alone made the difference
        accepted = client.post(
            "/invocations", json={"prompt": "x"}, headers={"Authorization": f"Bearer {token}", SESSION: SID}
        )
        assert accepted.status_code == 200, accepted.text
        assert [(s["tenant_context"], s["user_id"]) for s in states] == [("tenant-001", "alice")]
