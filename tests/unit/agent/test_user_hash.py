"""The logs' user_hash is a keyed HMAC: not reversible by hashing candidate user ids."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agent.app import create_app
from agent.orchestrator import build_conversation
from agent.services import Services
from agent.sessions import SessionRegistry
from agent.settings import Settings
from agent.user_hash import UserHasher
from auth.dev_issuer import DevIssuer
from tests.support.scripted_model import EchoModel

EMAIL = "alice@example.com"
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def _logged_user_hash(tmp_path: Path, caplog: pytest.LogCaptureFixture, **settings: Any) -> str:
    """Run one invocation of a fresh app for user EMAIL and return the user_hash it logged."""
    issuer = DevIssuer(tmp_path / "issuer")
    config = Settings(auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, memory_enabled=False, **settings)

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(lambda cid, owner: build_conversation(EchoModel(), None), max_sessions=2, idle_timeout_seconds=60)
        return Services(settings, issuer.verifier(), registry)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="agent.app"):
        with TestClient(create_app(config, services_factory=services_factory)) as client:
            response = client.post(
                "/invocations",
                json={"prompt": "hi"},
                headers={"Authorization": f"Bearer {issuer.mint('tenant-a', EMAIL)}", SESSION: "s" * 33},
            )
            assert response.status_code == 200, response.text
    (record,) = [r for r in caplog.records if r.getMessage() == "invocation"]
    return str(record.user_hash)


def test_logged_user_hash_is_the_hmac_under_the_configured_key(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logged = _logged_user_hash(tmp_path, caplog, log_hash_key="per-deployment-secret")
    assert logged == hmac.new(b"per-deployment-secret", EMAIL.encode(), hashlib.sha256).hexdigest()[:16]
    assert not hashlib.sha256(EMAIL.encode()).hexdigest().startswith(logged[:12])  # the old unsalted hash
    assert "per-deployment-secret" not in caplog.text


def test_without_a_key_each_process_draws_its_own(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _logged_user_hash(tmp_path / "1", caplog)
    second = _logged_user_hash(tmp_path / "2", caplog)
    assert first != second
    assert hashlib.sha256(EMAIL.encode()).hexdigest()[:12] not in (first[:12], second[:12])


def test_hasher_is_stable_per_key_and_hides_it() -> None:
    hasher = UserHasher("s3cr3t-key")
    assert hasher(EMAIL) == UserHasher(b"s3cr3t-key")(EMAIL) != UserHasher("other")(EMAIL)
    assert hasher("bob") != hasher(EMAIL) and len(hasher(EMAIL)) == 16
    assert "s3cr3t" not in repr(hasher)
