"""End-to-end requests/second of the real app over loopback, memory plugin on vs off.

Starts ``python -m agent`` twice (``AGENT_MEMORY_ENABLED`` true / false) with the echo scripted
model, the local backend (LocalIndex + WordLlama) and dev-issuer tokens. For 1, 8 and 32
concurrent sessions, each worker runs conversations of ``--turns`` turns (the last one with
``end_session``, so memory-on also pays for summaries) for ``--seconds``. The baseline is the
memory-off server measured in the same run; ``ratio`` = on / off throughput.

    python -m bench.bench_app [--seconds 4] [--turns 4] [--json]
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench._common import emit, parser, summary_ms

REPO = Path(__file__).resolve().parents[1]
SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
ECHO_MODEL = "import:tests.support.scripted_model:build_echo_model"
CONCURRENCY = (1, 8, 32)
USERS = 32


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process on a free loopback port with its own state directory."""

    def __init__(self, state_dir: Path, memory: bool) -> None:
        self.state_dir = state_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "AGENT_AUTH_MODE": "dev",
            "AGENT_PORT": str(self.port),
            "AGENT_HOST": "127.0.0.1",
            "AGENT_STATE_DIR": str(state_dir),
            "AGENT_MODEL_PROVIDER": ECHO_MODEL,
            "AGENT_MEMORY_ENABLED": str(memory).lower(),
            "AGENT_LOG_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path = state_dir / "server.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:  # a file, never a pipe nobody drains
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/ping", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def wait_idle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and httpx.get(f"{self.url}/ping").json()["status"] != "Healthy":
            time.sleep(0.05)

    def stop(self) -> None:
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
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        stop_at = time.perf_counter() + seconds

        async def worker(n: int) -> None:
            while time.perf_counter() < stop_at:
                await _conversation(client, url, tokens[n % len(tokens)], turns, latencies)

        start = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, **summary_ms(latencies)}


def _seed(url: str, tokens: list[str]) -> None:
    """One finished conversation per user, so memory-on retrieves and injects real memories."""
    asyncio.run(_load_once(url, tokens))


async def _load_once(url: str, tokens: list[str]) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(_conversation(client, url, t, 2, []) for t in tokens))


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    p.add_argument("--turns", type=int, default=4, help="turns per conversation (last one ends it)")
    args = p.parse_args()

    from auth.dev_issuer import DevIssuer

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-app-") as tmp:
        results: dict[tuple[bool, int], dict[str, Any]] = {}
        for memory in (False, True):
            state = Path(tmp) / ("on" if memory else "off")
            server = Server(state, memory)
            try:
                server.wait_ready()
                issuer = DevIssuer(state / "dev-issuer")
                tokens = [issuer.mint(f"tenant-{n % 4}", f"user-{n}") for n in range(USERS)]
                _seed(server.url, tokens)
                server.wait_idle()
                for concurrency in CONCURRENCY:
                    results[(memory, concurrency)] = asyncio.run(
                        _load(server.url, tokens, concurrency, args.seconds, args.turns)
                    )
                    server.wait_idle()
            finally:
                server.stop()
        for concurrency in CONCURRENCY:
            off, on = results[(False, concurrency)], results[(True, concurrency)]
            for label, r in (("off (baseline)", off), ("on", on)):
                rows.append(
                    {
                        "sessions": concurrency,
                        "memory": label,
                        "requests": r["requests"],
                        "req_per_s": r["rps"],
                        "p50_ms": r["p50_ms"],
                        "p99_ms": r["p99_ms"],
                        "ratio_vs_off": r["rps"] / off["rps"],
                    }
                )
    emit("bench_app: end-to-end /invocations throughput over loopback (echo model, local backend)", rows, args.json)


if __name__ == "__main__":
    main()
