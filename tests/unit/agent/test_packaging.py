"""Deployment files: .bedrock_agentcore.yaml matches the app, requirements.txt matches pyproject."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from agent.settings import AGENTCORE_IDLE_TIMEOUT_SECONDS, Settings

ROOT = Path(__file__).resolve().parents[3]


def _agent_config() -> dict:
    config = yaml.safe_load((ROOT / ".bedrock_agentcore.yaml").read_text())
    return config["agents"][config["default_agent"]]


def test_agentcore_config_points_at_the_app_with_jwt_auth() -> None:
    agent = _agent_config()
    assert agent["entrypoint"] == "agent/app.py" and (ROOT / agent["entrypoint"]).is_file()
    assert agent["language"] == "python"
    jwt = agent["authorizer_configuration"]["customJWTAuthorizer"]
    assert jwt["discoveryUrl"].startswith("https://cognito-idp.")
    assert jwt["discoveryUrl"].endswith("/.well-known/openid-configuration")
    assert jwt["allowedClients"]
    assert "Authorization" in agent["request_header_configuration"]["requestHeaderAllowlist"]


def test_our_idle_timer_fires_before_agentcore_ends_the_session() -> None:
    lifecycle = _agent_config()["aws"]["lifecycle_configuration"]
    assert lifecycle["idle_runtime_session_timeout"] == AGENTCORE_IDLE_TIMEOUT_SECONDS
    defaults = Settings(auth_mode="dev")
    assert defaults.idle_timeout_seconds + defaults.reap_interval_seconds < lifecycle["idle_runtime_session_timeout"]


def test_requirements_match_pyproject_runtime_dependencies() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == pyproject["project"]["dependencies"]
