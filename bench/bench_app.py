"""End-to-end requests/second of the real app over loopback, memory plugin on vs off.

Starts ``python -m agent`` twice (``AGENT_MEMORY_ENABLED`` true / false) with the plain echo
model (``ECHO: <prompt>``: the same answer on and off, no recording), the local backend (LocalIndex + WordLlama) and dev-issuer tokens; both stay up for the
whole run. For each ``--turns`` value and 1, 8 and 32 concurrent sessions, each worker runs
conversations of that many turns (the last one with ``end_session``, so memory-on also pays
for the durable closed entry and the summaries) for ``--seconds``, split into four slices
measured off, on, on, off (ABBA), so load from other processes falls on both alike. Before
each slice the servers are idle (``/ping`` Healthy: the previous slice's summaries stored).

Columns: ``req_per_s`` over the slices' load time; ``drain_s``, how long the server stayed
HealthyBusy after its slices (summaries still being stored), and ``sustained_rps`` = requests /
(load time + drain), the rate at which conversations are also fully stored;
``server_cpu_ms_per_req``, the server process's CPU time (all threads, drain included) per
request (Linux ``/proc``). ``ratio`` = on / off ``req_per_s``; ``sustained_ratio`` the same
for ``sustained_rps``.

    python -m bench.bench_app [--seconds 8] [--turns 4 8] [--json]
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from agent.listening import wait_until_listening
from bench._common import emit, parser, summary_ms

REPO = Path(__file__).resolve().parents[1]
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
ECHO_MODEL = "import:tests.support.scripted_model:build_plain_echo_model"  # same answer on and off
CONCURRENCY = (1, 8, 32)
USERS = 32


class Server:
    """A server process on a free loopback port (``AGENT_PORT=0``) with its own state directory."""

    def __init__(self, state_dir: Path, memory: bool) -> None:
        self.state_dir = state_dir
        self.url = ""  # known once the server prints where it listens
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AGENT_AUTH_MODE": "dev",
            "AGENT_PORT": "0",
            "AGENT_HOST": "127.0.0.1",
            "AGENT_STATE_DIR": str(state_dir),
            "AGENT_MODEL_PROVIDER": ECHO_MODEL,
            "AGENT_MEMORY_ENABLED": str(memory).lower(),
            "AGENT_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path = state_dir / "server.log"
        self.memory = memory
        self.pings = httpx.Client(timeout=5)  # kept: creating a client takes ~0.1 s (TLS context)
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # a file, never a pipe nobody drains
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.url = wait_until_listening(self.proc, self.log_path, timeout)

    def wait_idle(self, timeout: float = 60.0) -> float:
        """Block until ``/ping`` says Healthy; returns the seconds waited."""
        start = time.monotonic()
        while time.monotonic() - start < timeout and self.pings.get(f"{self.url}/ping").json()["status"] != "Healthy":
            time.sleep(0.01)
        return time.monotonic() - start

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server process so far (0.0 where /proc is absent)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.pings.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _conversation(client: httpx.AsyncClient, url: str, token: str, turns: int, latencies: list[float]) -> None:
    headers = {"Authorization": f"Bearer {token}", SESSION_HEADER: f"bench-{uuid.uuid4()}"}
    for turn in range(turns):
        payload: dict[str, Any] = {"prompt": f"Turn {turn}: my project codename is Falcon."}
        if turn == turns - 1:
            payload["end_session"] = True
        start = time.perf_counter()
        response = await client.post(f"{url}/invocations", json=payload, headers=headers)
        latencies.append(time.perf_counter() - start)
        response.raise_for_status()


async def _load(url: str, tokens: list[str], concurrency: int, seconds: float, turns: int) -> dict[str, Any]:
    latencies: list[float] = []
    # idle connections dropped before uvicorn's 5 s keep-alive timeout closes them under us
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        stop_at = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            while time.perf_counter() < stop_at:
                await _conversation(client, url, tokens[n % len(tokens)], turns, latencies)

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "latencies": latencies}


def _seed(url: str, tokens: list[str]) -> None:
    """One finished conversation per user, so memory-on retrieves and injects real memories."""
    asyncio.run(_load_once(url, tokens))


async def _load_once(url: str, tokens: list[str]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(_conversation(client, url, t, 2, []) for t in tokens))


class _Cell:
    """Totals of one mode in one (turns, sessions) cell, over its slices."""

    def __init__(self) -> None:
        self.requests = 0
        self.load_s = 0.0
        self.drain_s = 0.0
        self.cpu_s = 0.0
        self.latencies: list[float] = []

    def measure(self, server: Server, tokens: list[str], concurrency: int, seconds: float, turns: int) -> None:
        server.wait_idle()
        cpu = server.cpu_seconds()
        start = time.perf_counter()
        result = asyncio.run(_load(server.url, tokens, concurrency, seconds, turns))
        self.load_s += time.perf_counter() - start
        self.drain_s += server.wait_idle()
        self.cpu_s += server.cpu_seconds() - cpu
        self.requests += result["requests"]
        self.latencies += result["latencies"]

    def row(self) -> dict[str, Any]:
        stats = summary_ms(self.latencies)
        return {
            "requests": self.requests,
            "req_per_s": self.requests / self.load_s,
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
            "drain_s": self.drain_s,
            "sustained_rps": self.requests / (self.load_s + self.drain_s),
            "server_cpu_ms_per_req": self.cpu_s * 1e3 / self.requests,
        }


def main() -> None:
    p = parser("bench.bench_app", __doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per mode and cell")
    p.add_argument("--turns", type=int, nargs="+", default=[4, 8], help="turns per conversation (last one ends it)")
    args = p.parse_args()

    from auth.dev_issuer import DevIssuer

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-app-", ignore_cleanup_errors=True) as tmp:
        servers = [Server(Path(tmp) / ("on" if memory else "off"), memory) for memory in (False, True)]
        try:
            tokens: dict[bool, list[str]] = {}
            for server in servers:
                server.wait_ready()
                issuer = DevIssuer(server.state_dir / "dev-issuer")
                tokens[server.memory] = [issuer.mint(f"tenant-{n % 4}", f"user-{n}") for n in range(USERS)]
                _seed(server.url, tokens[server.memory])
            off, on = servers
            for turns in args.turns:
                for concurrency in CONCURRENCY:
                    cells = {False: _Cell(), True: _Cell()}
                    for server in (off, on, on, off):  # ABBA
                        cells[server.memory].measure(server, tokens[server.memory], concurrency, args.seconds / 2, turns)
                    base = cells[False].row()
                    for memory in (False, True):
                        row = cells[memory].row()
                        rows.append({
                            "turns": turns,
                            "sessions": concurrency,
                            "memory": "on" if memory else "off (baseline)",
                            **row,
                            "ratio": row["req_per_s"] / base["req_per_s"],
                            "sustained_ratio": row["sustained_rps"] / base["sustained_rps"],
                        })
        finally:
            for server in servers:
                server.stop()
    emit(f"bench_app: end-to-end /invocations throughput over loopback (echo model, local backend, "
         f"{args.seconds:g} s per mode and cell, ABBA; load average before the run {load:.2f})", rows, args.json)


if __name__ == "__main__":
    main()
