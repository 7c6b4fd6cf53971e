"""Fixtures for the CLI tests: a moto account and a runner that captures output and exit code."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
from moto import mock_aws

import memory.aws
from tests.support.s3vectors_double import install_s3vectors_double
from tests.support.scripts_cli import Result, cli_runner

REGION = "us-east-1"
ACCOUNT = "123456789012"
EXEC_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account, S3 Vectors behind the double (GetIndex reports the metadata
    configuration an index was created with, as the service does; moto keeps none); the shared
    boto3 session is reset so it picks up the env credentials."""
    install_s3vectors_double(monkeypatch)
    monkeypatch.setattr(memory.aws, "_default_session", None)
    with mock_aws():
        yield


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``python -m scripts <argv>`` in-process and return its exit code and output."""
    return cli_runner(capsys)
