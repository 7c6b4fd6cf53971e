"""Fixtures for the CLI tests: a moto account and a runner that captures output and exit code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import pytest
from moto import mock_aws

import memory.aws
from scripts.__main__ import main

REGION = "us-east-1"
ACCOUNT = "123456789012"
EXEC_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh moto account; the shared boto3 session is reset so it picks up the env credentials."""
    monkeypatch.setattr(memory.aws, "_default_session", None)
    with mock_aws():
        yield


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``python -m scripts <argv>`` in-process and return its exit code and output."""

    def run(*argv: str) -> Result:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
