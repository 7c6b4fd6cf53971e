"""Live-AWS fixtures: real credentials (not the unit tests' fakes) and the settings these tests need.

Skipped with a reason unless every variable below is set and credentials resolve:
``AGENT_MEMORY_IT_REGION`` (or ``AWS_REGION``), ``AGENT_MEMORY_IT_BUCKET`` (a vector bucket
name; created if missing), ``AGENT_MEMORY_IT_TVM_ROLE_ARN`` (a role made by
``python -m scripts tvm-role`` for that bucket whose trust policy names the caller's role).
See docs/operations.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import boto3
import pytest

import memory.aws
from tests.support.scripts_cli import Result, cli_runner


@dataclass(frozen=True)
class LiveSettings:
    region: str
    bucket: str
    tvm_role_arn: str


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides the suite-wide fake credentials: these tests need the real ones."""
    monkeypatch.setattr(memory.aws, "_default_session", None)


@pytest.fixture
def live() -> LiveSettings:
    region = os.environ.get("AGENT_MEMORY_IT_REGION") or os.environ.get("AWS_REGION")
    bucket = os.environ.get("AGENT_MEMORY_IT_BUCKET")
    role = os.environ.get("AGENT_MEMORY_IT_TVM_ROLE_ARN")
    missing = [
        name
        for name, value in (
            ("AGENT_MEMORY_IT_REGION", region),
            ("AGENT_MEMORY_IT_BUCKET", bucket),
            ("AGENT_MEMORY_IT_TVM_ROLE_ARN", role),
        )
        if not value
    ]
    if missing:
        pytest.skip(f"live AWS test: set {', '.join(missing)} (see docs/operations.md)")
    if boto3.Session().get_credentials() is None:
        pytest.skip("live AWS test: no AWS credentials resolve in this environment")
    return LiveSettings(str(region), str(bucket), str(role))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``python -m scripts <argv>`` in-process and return its exit code and output."""
    return cli_runner(capsys)
