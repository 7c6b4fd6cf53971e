"""``python -m scripts -v``: debug logging that never prints the caller's credentials."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
from moto.server import ThreadedMotoServer

import memory.aws
from scripts.__main__ import SDK_LOGGERS, main

TOKEN = "FwoGZXIvYXdzSESSIONTOKENvalue"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETvalue"


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A moto server on loopback (real HTTP requests, as botocore sends them to AWS) and
    temporary credentials, as an operator's SSO or assumed-role session has."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{host}:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLEEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setattr(memory.aws, "_default_session", None)
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    try:
        yield
    finally:
        server.stop()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_verbose_output_never_contains_the_session_token(moto_server, caplog, capsys) -> None:
    """botocore's own DEBUG log prints each request's headers (``X-Amz-Security-Token``) and
    bodies; an operator pastes ``-v`` output into tickets, so it must not carry credentials."""
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket"]) == 0
    out, err = capsys.readouterr()
    assert "CREATED  vector bucket mem-bucket" in out
    printed = caplog.text + out + err
    assert TOKEN not in printed and SECRET not in printed
