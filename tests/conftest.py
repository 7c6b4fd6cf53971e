"""Test-wide guards: fake AWS credentials and a region, so no test can reach a real account, and
none of the app settings the developer's shell exports."""

from __future__ import annotations

import os

import pytest

from tests.support import moto_s3_atomic


def pytest_configure(config: pytest.Config) -> None:
    moto_s3_atomic.install()  # S3's conditional writes are atomic; moto's are not (see there)
    # The app settings of the developer's shell (the README exports AGENT_AUTH_MODE & co. to call
    # the local app) reach no test, whatever its fixtures' scope; the live tests keep their own.
    for name in list(os.environ):
        if (name.startswith("AGENT_") and not name.startswith("AGENT_MEMORY_IT_")) or name == "AUTH_DEV_STATE_DIR":
            del os.environ[name]


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
