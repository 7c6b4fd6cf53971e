"""Test-wide guards: fake AWS credentials and a region, so no test can reach a real account."""

from __future__ import annotations

import os

import pytest

from tests.support import moto_s3_atomic


def pytest_configure(config: pytest.Config) -> None:
    moto_s3_atomic.install()  # S3's conditional writes are atomic; moto's are not (see there)


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
