"""The deploy rehearsal: the README's deploy steps, the toolkit's own configure and upload, and
the rendered Dockerfile's CMD run as the runtime user, driven over HTTP (see conftest.py).

What it cannot show offline: the real image build (no registry reachable for the base image),
AgentCore's own JWT authorizer (its documented claim checks are applied to the real tokens
instead) and the microVM (a fresh root-owned copy of the uploaded tree and a private /tmp
stand in for one).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.deploy.conftest import AGENT, Deployment
from tests.deploy.runtime_image import RuntimeProcess

#: Root is needed to hand the tree to root and drop to uid 1000 (CI runs as root). The first run
#: builds the image's virtualenv (cached afterwards): allow it more than the suite's 300 s.
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"),
    pytest.mark.timeout(900),
]
SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
FACT = "My project codename is Bluebird and it launches on March 3rd."
QUESTION = "When does my project Bluebird launch?"


def _session() -> str:
    return f"rehearsal-{uuid.uuid4()}"  # >= 33 characters, like AgentCore's


def _invoke(url: str, token: str, session_id: str, payload: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", SESSION: session_id}
    return httpx.post(f"{url}/invocations", json=payload, headers=headers, timeout=60)


def _ping(url: str) -> str:
    return str(httpx.get(f"{url}/ping", timeout=5).json()["status"])


def _authorizer_accepts(authorizer: dict[str, Any], token: str) -> bool:
    """AgentCore's documented checks: ``allowedAudience`` against ``aud``, ``allowedClients``
    against ``client_id``; every configured check must pass (signature checked by the app)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    config = authorizer["customJWTAuthorizer"]
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if "allowedAudience" in config and not set(audiences) & set(config["allowedAudience"]):
        return False
    return not ("allowedClients" in config and claims.get("client_id") not in config["allowedClients"])


def test_configure_writes_a_complete_container_deployment(deployment: Deployment) -> None:
    from bedrock_agentcore_starter_toolkit.utils.runtime.schema import BedrockAgentCoreAgentSchema

    agent = deployment.toolkit_config["agents"][AGENT]
    assert BedrockAgentCoreAgentSchema.model_validate(agent).validate(for_local=False) == []  # launchable
    assert agent["deployment_type"] == "container" and agent["aws"]["account"]
    assert agent["request_header_configuration"]["requestHeaderAllowlist"] == ["Authorization"]
    assert agent["aws"]["lifecycle_configuration"] == {"idle_runtime_session_timeout": 900, "max_lifetime": 28800}
    assert deployment.dockerfile.cmd == ["opentelemetry-instrument", "python", "-m", "agent.app"]
    assert deployment.dockerfile.user == "bedrock_agentcore" and deployment.dockerfile.copies_source_as_root
    assert deployment.dockerfile.requirement_files == ["requirements.txt"]


def test_the_runtime_authorizer_and_the_app_accept_the_same_token(deployment: Deployment) -> None:
    authorizer = deployment.toolkit_config["agents"][AGENT]["authorizer_configuration"]
    assert authorizer["customJWTAuthorizer"]["discoveryUrl"].endswith("/.well-known/openid-configuration")
    assert _authorizer_accepts(authorizer, deployment.tokens["id"])  # what the README tells users to send
    settings = (deployment.project / "agentcore.env").read_text()
    assert "AGENT_TOKEN_USES=id\n" in settings  # the app accepts exactly that token type


def test_the_upload_carries_the_settings_and_no_local_state(deployment: Deployment) -> None:
    import zipfile
    from io import BytesIO

    names = zipfile.ZipFile(BytesIO(deployment.upload)).namelist()
    assert "agentcore.env" in names and "agent/app.py" in names and "requirements.txt" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv", ".state", ".git/"))]


def test_runtime_serves_recalls_and_keeps_serving_after_a_redeploy_without_env(
    deployment: Deployment, home: Path
) -> None:
    token = deployment.tokens["id"]
    first = RuntimeProcess(
        deployment.dockerfile, deployment.venv, deployment.fresh_app_dir("vm-1"), home, deployment.plumbing()
    ).start()
    try:
        url = first.wait_ready()
        s1 = _session()
        told = _invoke(url, token, s1, {"prompt": FACT})
        assert told.status_code == 200, told.text
        ended = _invoke(url, token, s1, {"end_session": True})
        assert ended.status_code == 200 and ended.json()["session_ended"] is True
        assert deployment.bedrock.summaries_waiting.wait(30), first.log()
        assert _ping(url) == "HealthyBusy"  # the summary is an async task: the session is kept
        deployment.bedrock.release_summaries.set()
        deadline = time.monotonic() + 30
        while _ping(url) != "Healthy" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _ping(url) == "Healthy", first.log()
        recalled = _invoke(url, token, _session(), {"prompt": QUESTION})
        assert recalled.status_code == 200 and recalled.json()["memories_used"], first.log()
        stored = recalled.json()["memories_used"]
        assert _invoke(url, "not-a-token", _session(), {"prompt": QUESTION}).status_code == 401
    finally:
        exit_code = first.stop()
    # SIGTERM (the runtime's stop): open sessions ended, then uvicorn re-raises the signal.
    assert exit_code in (0, -signal.SIGTERM), first.log()
    assert "PermissionError" not in first.log() and "Traceback" not in first.log()

    # Redeploy: `agentcore launch` without --env sends an empty environment; a new microVM
    # starts from the image again. The settings come from the uploaded agentcore.env.
    second = RuntimeProcess(
        deployment.dockerfile, deployment.venv, deployment.fresh_app_dir("vm-2"), home, deployment.plumbing()
    ).start()
    try:
        url = second.wait_ready()
        again = _invoke(url, token, _session(), {"prompt": QUESTION})
        assert again.status_code == 200, second.log()
        # Session 1's memory again (the recall session, ended at shutdown, was stored too).
        assert set(stored) <= set(again.json()["memories_used"])
    finally:
        second.stop()
    assert not deployment.bedrock.errors


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("AGENT_EMBEDDER", "local", "AGENT_EMBEDDER=local needs the 'wordllama' package"),
        ("AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS", "600", "AGENT_RUNTIME_IDLE_TIMEOUT_SECONDS (600"),
    ],
)
def test_runtime_refuses_what_cannot_work_there_naming_the_setting(
    deployment: Deployment, home: Path, setting: str, value: str, named: str
) -> None:
    env = {**deployment.plumbing(), setting: value}
    app_dir = deployment.fresh_app_dir(f"vm-{uuid.uuid4()}")
    process = RuntimeProcess(deployment.dockerfile, deployment.venv, app_dir, home, env)
    assert process.run_to_exit() == 2, process.log()
    assert named in process.log()
