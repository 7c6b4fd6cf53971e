"""The offline demo (``python -m agent.demo``; ``make demo`` installs first).

Starts the real app (``python -m agent``) on a free loopback port with the embedded defaults --
local vector index and outbox under a fresh state directory, WordLlama embeddings, the
in-process SmolLM2 model, the local dev issuer -- and drives it over HTTP with minted tokens:

1. tenant-001/alice states a fact and ends the session; the demo waits until ``/ping`` is
   ``Healthy`` again (the summary is stored);
2. a new tenant-001/alice session asks about it: the fact's memory must be injected on the
   first turn (``memories_used`` of the response);
3. tenant-002/bob asks the same: no memory may be used, and the answer may not make up a
   launch date (``no invented memory``: an answer is checked for anything date-like);
4. a new tenant-001/alice session greets (nothing relevant to inject), then explicitly asks to
   search memory: the recall tool runs mid-turn and the memory shows up in ``memories_used``.

Checks are judged by which memories were retrieved, never by the small model's wording. Prints
the conversation and PASS/FAIL lines, exits 1 on any FAIL, and always stops the server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agent.listening import wait_until_listening
from agent.secret_settings import SECRETS_ID_ENV
from auth.dev_issuer import DevIssuer
from auth.local_state import state_root
from memory.factory import create_embedder, create_store
from memory.types import Scope

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
FACT = "My project codename is Bluebird and it launches on March 3rd. Please remember that."
QUESTION = "What is the launch date of my project Bluebird?"
GREETING = "Hello, how are you today?"
RECALL_REQUEST = "Search my memory for my project codename"
_DATE = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?\b"
    r"|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b"
    r"|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",
    re.IGNORECASE,
)


@dataclass
class Check:
    """One PASS/FAIL verdict of the demo."""

    name: str
    passed: bool
    detail: str


@dataclass
class Turn:
    """One HTTP turn's outcome."""

    status: int
    body: dict[str, Any]
    seconds: float

    @property
    def memories(self) -> list[str]:
        return list(self.body.get("memories_used") or [])


@dataclass
class Server:
    """The app as a child process; ``stop`` always ends it (SIGTERM, then SIGKILL)."""

    state_dir: Path
    port: int  # 0: a free one, read back from the line the app prints
    env_overrides: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    base_url: str = ""

    @property
    def log_path(self) -> Path:
        return self.state_dir / "server.log"

    def start(self, timeout: float) -> None:
        env = {
            # the shell's settings apply (e.g. AGENT_MEMORY_ENABLED), but never a deployment's
            # secret: the offline demo reads nothing from AWS
            **{name: value for name, value in os.environ.items() if name != SECRETS_ID_ENV},
            "AGENT_HOST": "127.0.0.1",
            "AGENT_PORT": str(self.port),
            "AGENT_STATE_DIR": str(self.state_dir),
            "AGENT_AUTH_MODE": "dev",
            "AGENT_BACKEND": "local",
            "AGENT_EMBEDDER": "local",
            "AGENT_TENANT_MODE": "multi",
            "AGENT_MODEL_PROVIDER": "local",
            "AGENT_MODEL_MAX_TOKENS": "48",
            "AGENT_LOG_LEVEL": "INFO",
            "HF_HUB_OFFLINE": "1",
            **self.env_overrides,
        }
        started_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        known = f"http://127.0.0.1:{self.port}" if self.port else None
        self.base_url = wait_until_listening(
            self.process, self.log_path, timeout, log_offset=started_at, url=known, name="the app", poll_seconds=0.2
        )

    def ping(self) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.base_url}/ping", timeout=2) as response:
                return str(json.load(response).get("status"))
        except (OSError, ValueError):
            return None

    def wait_idle(self, timeout: float) -> float:
        """Seconds until ``/ping`` reports ``Healthy`` (no background summary running)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.ping() == "Healthy":
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"/ping still busy after {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Client:
    """``POST /invocations`` with a bearer token and the AgentCore session header."""

    def __init__(self, base_url: str, out: TextIO) -> None:
        self.base_url = base_url
        self.out = out

    def invoke(self, token: str, session_id: str, who: str, payload: dict[str, Any]) -> Turn:
        prompt = payload.get("prompt")
        flag = "  [end_session]" if payload.get("end_session") else ""
        self.out.write(f"  {who:>6} > {prompt or ''}{flag}\n")
        request = urllib.request.Request(
            f"{self.base_url}/invocations",
            data=json.dumps(payload).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token}",
                SESSION_HEADER: session_id,
            },
            method="POST",
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                turn = Turn(response.status, json.load(response), time.monotonic() - started)
        except urllib.error.HTTPError as exc:
            turn = Turn(exc.code, json.loads(exc.read() or b"{}"), time.monotonic() - started)
        self._print(turn)
        return turn

    def _print(self, turn: Turn) -> None:
        if turn.status != 200:
            self.out.write(f"   agent < HTTP {turn.status}: {turn.body}\n")
            return
        answer = " ".join((turn.body.get("answer") or "").split())
        if answer:
            self.out.write(f"   agent < {answer[:400]}{'...' if len(answer) > 400 else ''}\n")
        self.out.write(f"           memories used: {turn.memories or 'none'}   ({turn.seconds:.1f} s)\n")


def invented_date(answer: str) -> str | None:
    """The first date-like phrase of ``answer`` (for a tenant that has no memory of any date)."""
    match = _DATE.search(answer)
    return match.group(0) if match else None


def new_session(label: str) -> str:
    """An AgentCore-style session id (at least 33 characters)."""
    return f"demo-{label}-{uuid.uuid4()}"


def stored_memory_ids(state_dir: Path, tenant_id: str, user_id: str, conversation_id: str) -> set[str]:
    """Keys of the memories the app stored for one conversation (read through the same store
    selection as the app: local backend, one index per tenant)."""
    store = create_store(
        backend="local", tenancy="multi", embedder=create_embedder("local"), local_dir=state_dir / "vectors"
    )
    scope = Scope(user_id=user_id, tenant_id=tenant_id)
    return {m.id for m in store.list(scope) if m.conversation_id == conversation_id}


def run_scenario(server: Server, issuer: DevIssuer, out: TextIO) -> list[Check]:
    """Drive the four sessions; return the verdicts."""
    client = Client(server.base_url, out)
    alice = issuer.mint("tenant-001", "alice")
    bob = issuer.mint("tenant-002", "bob")
    checks: list[Check] = []

    out.write("\n== Session 1: tenant-001 / alice states a fact, then ends the session\n")
    s1 = new_session("s1")
    stated = client.invoke(alice, s1, "alice", {"prompt": FACT})
    ended = client.invoke(alice, s1, "alice", {"prompt": "Thanks, that is all for today.", "end_session": True})
    waited = server.wait_idle(timeout=120)
    out.write(f"           summary stored: /ping back to Healthy after {waited:.1f} s\n")
    checks.append(Check("session 1 accepted", stated.status == ended.status == 200,
                        f"HTTP {stated.status}, {ended.status}; session_ended={ended.body.get('session_ended')}"))
    fact_ids = stored_memory_ids(server.state_dir, "tenant-001", "alice", s1)
    out.write(f"           stored for session 1: {sorted(fact_ids) or 'nothing'}\n")

    out.write("\n== Session 2: tenant-001 / alice, new session, asks about it\n")
    recalled = client.invoke(alice, new_session("s2"), "alice", {"prompt": QUESTION})
    checks.append(Check(
        "recall", recalled.status == 200 and bool(fact_ids & set(recalled.memories)),
        f"session 1's memory injected on the first turn of a new session: {recalled.memories or 'none'}",
    ))

    out.write("\n== Session 3: tenant-002 / bob asks the same question\n")
    isolated = client.invoke(bob, new_session("s3"), "bob", {"prompt": QUESTION})
    leaked = set(isolated.memories) & set(recalled.memories)
    checks.append(Check(
        "isolation", isolated.status == 200 and not isolated.memories and bool(recalled.memories),
        f"tenant-002 memories used: {isolated.memories or 'none'}"
        + (f"; tenant-001 memories leaked: {sorted(leaked)}" if leaked else ""),
    ))
    made_up = invented_date(str(isolated.body.get("answer") or ""))
    checks.append(Check(
        "no invented memory", isolated.status == 200 and made_up is None,
        f"tenant-002's answer {'gives a launch date it cannot know: ' + repr(made_up) if made_up else 'gives no date'}",
    ))

    out.write("\n== Session 4: tenant-001 / alice greets, then asks to search memory mid-conversation\n")
    s4 = new_session("s4")
    greeted = client.invoke(alice, s4, "alice", {"prompt": GREETING})
    searched = client.invoke(alice, s4, "alice", {"prompt": RECALL_REQUEST})
    new_ids = [m for m in searched.memories if m not in greeted.memories]
    checks.append(Check(
        "recall tool", greeted.status == searched.status == 200 and bool(fact_ids & set(new_ids)),
        f"memories recalled by memory_tool in turn 2: {new_ids or 'none'} "
        f"(injected on turn 1: {greeted.memories or 'none'})",
    ))
    return checks


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=state_root() / "demo",
                   help=f"wiped and recreated for every run (default: {state_root() / 'demo'})")
    p.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    p.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /ping")
    p.add_argument("--model-provider", default="local",
                   help="AGENT_MODEL_PROVIDER for the app (default: local SmolLM2)")
    return p


def _check_port_free(port: int) -> None:
    """Raise OSError when something listens on ``port``: the demo would drive that server instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: TIME_WAIT is no obstacle
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise OSError(
                f"port {port} on 127.0.0.1 is in use (another app?): stop it, pick another --port, "
                "or leave --port out for a free one"
            ) from None


def _fresh_state(state_dir: Path) -> DevIssuer:
    """Wipe and recreate ``state_dir``; the dev issuer's key is created before the app reads it."""
    try:
        if state_dir.exists():
            shutil.rmtree(state_dir)
        state_dir.mkdir(parents=True)
        return DevIssuer(state_dir / "dev-issuer")
    except OSError as exc:
        raise OSError(
            f"cannot create the state directory {state_dir} ({exc.strerror or type(exc).__name__}): "
            "pass --state-dir with a folder this user can write, or set XDG_STATE_HOME"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when every check passes."""
    args = _parser().parse_args(argv)
    out = sys.stdout
    started = time.monotonic()
    server = Server(args.state_dir, args.port,
                    env_overrides={"AGENT_MODEL_PROVIDER": args.model_provider})
    out.write(f"Starting the app (state: {args.state_dir}, log: {server.log_path})\n")
    try:
        issuer = _fresh_state(args.state_dir)
        if args.port:
            _check_port_free(args.port)
        server.start(args.start_timeout)
        out.write(f"App ready on {server.base_url} after {time.monotonic() - started:.1f} s\n")
        checks = run_scenario(server, issuer, out)
    except (RuntimeError, TimeoutError, OSError) as exc:
        checks = [Check("demo ran", False, str(exc))]
    finally:
        server.stop()
    out.write("\n")
    for check in checks:
        out.write(f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}\n")
    passed = all(c.passed for c in checks)
    out.write(f"\n{'ALL PASSED' if passed else 'FAILED'} in {time.monotonic() - started:.1f} s\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
