"""The line the app prints once it serves (any port), the socket AGENT_PORT=0 binds, and how its starter waits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.listening import (
    TAIL_LINES,
    NotListening,
    announce,
    answers_ping,
    bind_free_port,
    listening_url,
    wait_until_listening,
)


def test_a_free_port_is_bound_with_nodelay_that_accepted_connections_inherit() -> None:
    with bind_free_port("127.0.0.1") as (listener, url):
        host, port = listener.getsockname()
        assert url == f"http://127.0.0.1:{port}" and port > 0 and host == "127.0.0.1"
        assert listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            with accepted:  # what uvicorn's connections get (asyncio does not set it on an AF_UNIX-wrapped fd)
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


class _Writes:
    """A stream that records each write call."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_the_line_is_written_whole_so_no_other_thread_s_line_splits_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """``print`` wrote the address and its newline in two writes: printed once the server serves,
    a log line of the start-up replay's thread landed in between ("...:45383{"timestamp"..."),
    the address line never matched and the starter waited for it in vain (NotListening)."""
    stream = _Writes()
    monkeypatch.setattr(sys, "stderr", stream)
    announce("http://127.0.0.1:45383")
    assert stream.writes == ["agent: listening on http://127.0.0.1:45383\n"]


def test_the_printed_line_is_read_back_and_nothing_else_is() -> None:
    log = "INFO starting\nagent: listening on http://127.0.0.1:41891\nINFO ready\n"
    assert listening_url(log) == "http://127.0.0.1:41891"
    assert listening_url("agent: listening on nothing\n") is None
    assert listening_url("INFO starting\n") is None


# -- wait_until_listening: real child processes, short timeouts, no timing asserts -----------

REPO = Path(__file__).resolve().parents[3]
# Prints a line, then (late) binds a port, announces it and answers GET /ping with 200.
LATE_SERVER = """
import http.server, time
from agent.listening import announce

class Ping(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ping" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass

print("starting", flush=True)
time.sleep(0.5)
server = http.server.HTTPServer(("127.0.0.1", 0), Ping)
announce(f"http://127.0.0.1:{server.server_port}")
server.serve_forever()
"""


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[str], tuple[subprocess.Popen[bytes], Path]]]:
    """Start ``python -c code`` with its output appended to a log file; every process is killed after."""
    started: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "server.log"

    def run(code: str) -> tuple[subprocess.Popen[bytes], Path]:
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log, stderr=subprocess.STDOUT,
            )
        started.append(proc)
        return proc, log_path

    yield run
    for proc in started:
        proc.kill()
        proc.wait(timeout=10)


def test_the_address_is_returned_once_printed_late_and_answering_ping(start: Any, tmp_path: Path) -> None:
    stale = "agent: listening on http://127.0.0.1:1\n"  # a previous run's line in the same log
    (tmp_path / "server.log").write_text(stale)
    proc, log_path = start(LATE_SERVER)
    url = wait_until_listening(proc, log_path, timeout=30, log_offset=len(stale), poll_seconds=0.05)
    assert url != "http://127.0.0.1:1" and url.startswith("http://127.0.0.1:")
    assert answers_ping(url) and proc.poll() is None
    assert log_path.read_text().count("agent: listening on") == 2


def test_a_process_that_exits_first_is_reported_with_its_code_and_log_tail(start: Any) -> None:
    proc, log_path = start("import sys\nfor i in range(100): print(f'line {i}')\nsys.exit(3)")
    with pytest.raises(NotListening) as raised:
        wait_until_listening(proc, log_path, timeout=30, name="the runtime")
    message = str(raised.value)
    assert message.startswith("the runtime exited with 3 before it was ready")
    assert str(log_path) in message and message.endswith("line 99")
    assert f"line {99 - TAIL_LINES}\n" not in message and f"line {100 - TAIL_LINES}\n" in message


def test_a_process_that_never_prints_an_address_times_out_and_is_left_running(start: Any) -> None:
    proc, log_path = start("import time\nprint('loading models', flush=True)\ntime.sleep(60)")
    with pytest.raises(NotListening) as raised:
        wait_until_listening(proc, log_path, timeout=1, poll_seconds=0.05)
    message = str(raised.value)
    assert message.startswith("the server printed no address within 1 s") and message.endswith("loading models")
    assert proc.poll() is None  # stopping it is the caller's


def test_the_readiness_probe_decides_and_a_never_ready_server_times_out(start: Any) -> None:
    proc, log_path = start(
        "import time\nfrom agent.listening import announce\nannounce('http://127.0.0.1:9')\ntime.sleep(60)"
    )
    probed: list[str] = []

    def never_ready(url: str) -> bool:
        probed.append(url)
        return False

    with pytest.raises(NotListening) as raised:
        wait_until_listening(proc, log_path, timeout=1, ready=never_ready, poll_seconds=0.05)
    assert str(raised.value).startswith("the server listened on http://127.0.0.1:9 but was not ready within 1 s")
    assert probed and set(probed) == {"http://127.0.0.1:9"}
    assert wait_until_listening(proc, log_path, timeout=1, ready=lambda url: True) == "http://127.0.0.1:9"


def test_a_known_address_is_probed_without_reading_the_log(start: Any) -> None:
    proc, log_path = start("import time\ntime.sleep(60)")
    probed: list[str] = []

    def ready(url: str) -> bool:
        probed.append(url)
        return True

    url = wait_until_listening(proc, log_path, timeout=30, url="http://127.0.0.1:8080", ready=ready)
    assert url == "http://127.0.0.1:8080" and probed == [url]


# -- the app's own line: printed once it serves, on a fixed port as on AGENT_PORT=0 ----------


@pytest.mark.parametrize("fixed_port", [True, False], ids=["AGENT_PORT=<n>", "AGENT_PORT=0"])
def test_the_app_prints_where_it_listens_once_it_serves_whatever_the_port(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fixed_port: bool
) -> None:
    """On the default port (8080) the app printed nothing at all (uvicorn logs at WARNING): only
    ``AGENT_PORT=0`` said where it listened. Both now print the one line, once uvicorn serves."""
    from types import SimpleNamespace

    from starlette.applications import Starlette

    from agent import app as app_module
    from agent.shutdown import ShutdownDeadline, StoppingServer

    class ServeOnce(StoppingServer):
        async def main_loop(self) -> None:  # started and listening: shut down at once
            return None

    monkeypatch.setattr(app_module, "StoppingServer", ServeOnce)
    services = SimpleNamespace(deadline=ShutdownDeadline(1.0), begin_close=lambda: None)
    # The port stays reserved (bound, not listening) until uvicorn binds it too: both reuse the address.
    with socket.socket() as reserved:
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1] if fixed_port else 0
        app_module._serve(Starlette(), SimpleNamespace(host="127.0.0.1", port=port), services)  # type: ignore[arg-type]
    lines = [line for line in capsys.readouterr().err.splitlines() if "listening on" in line]
    assert len(lines) == 1, lines
    url = listening_url(lines[0])
    assert url is not None and url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    if fixed_port:
        assert url == f"http://127.0.0.1:{port}"
