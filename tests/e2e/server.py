"""Start the real ``python -m agent`` server on a free loopback port for end-to-end tests.

The server is started with ``AGENT_PORT=0``: it binds a port the OS chooses and prints
``agent: listening on http://host:port``, which is where the tests send their requests. No
port is chosen here, so no other process can take it between the choice and the bind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from agent.listening import NotListening, wait_until_listening

REPO = Path(__file__).resolve().parents[2]
ECHO_MODEL = "import:tests.support.scripted_model:build_echo_model"
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"


class AgentServer:
    """One server process with the echo model, the local backend and the dev issuer."""

    def __init__(self, state_dir: Path, **env: str) -> None:
        self.state_dir = state_dir
        self.url = ""
        self.log_path = state_dir / f"server-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AGENT_AUTH_MODE": "dev",
            "AGENT_HOST": "127.0.0.1",
            "AGENT_PORT": "0",
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

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self, timeout: float = 60.0) -> "AgentServer":
        """Start the process and wait until it listens and answers ``/ping``."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0  # a restart appends
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent"], cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        try:
            self.url = wait_until_listening(self.proc, self.log_path, timeout, log_offset=started_at, name="server")
        except NotListening:
            self.stop()
            raise
        return self

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
