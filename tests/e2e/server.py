"""Start the real ``python -m agent`` server on a free loopback port for end-to-end tests.

The app binds the port it is given (uvicorn through the AgentCore SDK, which logs nothing at
start-up and takes no socket), so the port is picked here and can be taken by another process
before the server binds it: a start that fails with "address already in use" is retried on
another port instead of failing the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
ECHO_MODEL = "import:tests.support.scripted_model:build_echo_model"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(RuntimeError):
    """Another process bound the port between ``free_port()`` and the server's start."""


class AgentServer:
    """One server process with the echo model, the local backend and the dev issuer."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        self._use_port(free_port())
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AGENT_AUTH_MODE": "dev",
            "AGENT_HOST": "127.0.0.1",
            "AGENT_STATE_DIR": str(state_dir),
            "AGENT_BACKEND": "local",
            "AGENT_EMBEDDER": "local",
            "AGENT_MODEL_PROVIDER": ECHO_MODEL,
            "AGENT_LOG_LEVEL": "INFO",
            "HF_HUB_OFFLINE": "1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def _use_port(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = self.state_dir / f"server-{port}.log"

    def start(self, timeout: float = 60.0, attempts: int = 5) -> "AgentServer":
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts - 1):
            try:
                return self._start_once(timeout)
            except PortTaken:
                self._use_port(free_port())
        return self._start_once(timeout)

    def _start_once(self, timeout: float) -> "AgentServer":
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent"], cwd=REPO, env={**self.env, "AGENT_PORT": str(self.port)},
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log().lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_idle(self, timeout: float = 20.0) -> None:
        """Wait until /ping reports Healthy (no background summary pending)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/ping", timeout=2).json()["status"] == "Healthy":
                return
            time.sleep(0.05)
        raise AssertionError("the server stayed HealthyBusy")

    def invoke(self, token: str | None, payload: Any, session_id: str | None = None) -> httpx.Response:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        return httpx.post(f"{self.url}/invocations", json=payload, headers=headers, timeout=30)
