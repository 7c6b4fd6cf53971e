"""Deployment files: .bedrock_agentcore.yaml matches the app, requirements.txt matches pyproject,
security-relevant dependency floors exclude known vulnerable versions."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

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


#: Security-relevant dependencies: (first version with every advisory below fixed, the advisories).
SECURITY_FLOORS = {
    "pyjwt": ("2.13.0", "CVE-2024-53861 partial iss match (fixed 2.10.1), CVE-2026-32597 crit header "
                        "(2.12.0), CVE-2026-48522..48526 (2.13.0)"),
    "starlette": ("0.49.1", "CVE-2025-54121 multipart (fixed 0.47.2), CVE-2025-62727 Range header DoS (0.49.1)"),
}


@pytest.mark.parametrize("source", ["pyproject.toml", "requirements.txt"])
def test_security_relevant_floors_exclude_every_known_vulnerable_version(source: str) -> None:
    if source == "pyproject.toml":
        lines = tomllib.loads((ROOT / source).read_text())["project"]["dependencies"]
    else:
        lines = [ln for ln in (ROOT / source).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    requirements = {canonicalize_name(r.name): r for r in map(Requirement, lines)}
    for name, (fixed, advisories) in SECURITY_FLOORS.items():
        assert name in requirements, f"{source} must pin a floor for {name} ({advisories})"
        floors = [Version(s.version) for s in requirements[name].specifier if s.operator in (">=", ">", "==", "~=")]
        assert floors and min(floors) >= Version(fixed), f"{source}: {requirements[name]} admits < {fixed}: {advisories}"
        assert Version(version(name)) >= Version(fixed)  # and the installed one is fixed too
