"""The line the app prints once it serves, and how a server started with ``AGENT_PORT=0`` is waited for.

The app prints ``agent: listening on http://host:port`` on stderr once uvicorn listens, on the
default port as on any other. Uvicorn (run through the AgentCore SDK) cannot report the port
the OS chose, so with ``AGENT_PORT=0`` the app binds the socket itself and that line is the
only way to learn its port. Tests, the demo and benchmarks start servers this way: no port is
chosen before the bind, so no other process can take it in between. Both sides of that line
live here: :func:`announce` in the server, :func:`wait_until_listening` in whoever started it
(the line, then ``/ping``).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_PREFIX = "agent: listening on "
_LINE = re.compile(rf"^{_PREFIX}(http://\S+)$", re.MULTILINE)


@contextmanager
def bind_free_port(host: str) -> Iterator[tuple[socket.socket, str]]:
    """A listening TCP socket on a port the OS chooses, and its ``http://`` address.

    ``TCP_NODELAY`` is set on the listener: uvicorn wraps a socket it is given by fd as
    ``AF_UNIX``, so asyncio skips the ``TCP_NODELAY`` it sets on TCP connections, and accepted
    sockets inherit the listener's (without it, Nagle and delayed ACKs added ~40 ms to every
    response written in parts: measured with httpx against the echo model, 52 ms vs 11 ms).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, 0), family=family) as listener:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        yield listener, http_url(host, listener.getsockname()[1])


def http_url(host: str, port: int) -> str:
    """The ``http://`` address of ``host`` (an IPv6 address in brackets) and ``port``."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(url: str) -> None:
    """Print where the server listens (stderr, flushed: the starter is waiting for it), in one
    write: other threads log meanwhile (the start-up replay), and ``print`` writes the newline
    apart, so their line could land between the address and its end."""
    sys.stderr.write(f"{_PREFIX}{url}\n")
    sys.stderr.flush()


def listening_url(log: str) -> str | None:
    """The address a server printed in ``log``, or None before it printed one."""
    found = _LINE.search(log)
    return found.group(1) if found else None


#: Lines of the server's log an error quotes (a start-up traceback fits).
TAIL_LINES = 60
# Loopback only: never through an HTTP proxy the environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class NotListening(RuntimeError):
    """The server process exited, or was not ready in time; the message ends with its log's tail."""


def answers_ping(url: str) -> bool:
    """Whether ``GET {url}/ping`` answers 200 within a second (the default readiness probe)."""
    try:
        with _DIRECT.open(f"{url}/ping", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def _read(log_path: Path, offset: int) -> str:
    try:
        return log_path.read_bytes()[offset:].decode(errors="replace")
    except FileNotFoundError:
        return ""


def wait_until_listening(
    process: subprocess.Popen[bytes],
    log_path: Path,
    timeout: float,
    *,
    log_offset: int = 0,
    url: str | None = None,
    ready: Callable[[str], bool] = answers_ping,
    name: str = "the server",
    poll_seconds: float = 0.1,
) -> str:
    """Wait until a server process prints where it listens and is ready there; return its address.

    Polls, until ``timeout`` seconds have passed: the process must still run, its log (from
    ``log_offset`` on: a restarted server appends to the same file) must hold the line
    :func:`announce` prints, and ``ready(url)`` must be true. The process is left running
    either way: stopping it is the caller's.

    Args:
        process: The server, its output going to ``log_path``.
        log_path: The file the process writes its stdout/stderr to.
        timeout: Seconds to wait in all.
        log_offset: Byte offset in ``log_path`` where this process's output starts.
        url: The address when it is known beforehand (a fixed port); the log is then not read.
        ready: Readiness probe called with the address (default: ``/ping`` answers 200).
        name: What error messages call the process, e.g. "the runtime".
        poll_seconds: Pause between two polls.

    Returns:
        The address, e.g. ``http://127.0.0.1:41891``.

    Raises:
        NotListening: The process exited first, or was not ready within ``timeout``; the message
            names the exit code or what was missing, the log file, and the log's last lines.
    """
    deadline = time.monotonic() + timeout
    while True:
        code = process.poll()
        if code is not None:
            raise NotListening(_failure(f"{name} exited with {code} before it was ready", log_path, log_offset))
        if url is None:
            url = listening_url(_read(log_path, log_offset))
        if url is not None and ready(url):
            return url
        if time.monotonic() >= deadline:
            waited = f"listened on {url} but was not ready" if url else "printed no address"
            raise NotListening(_failure(f"{name} {waited} within {timeout:g} s", log_path, log_offset))
        time.sleep(poll_seconds)


def _failure(what: str, log_path: Path, log_offset: int) -> str:
    tail = "\n".join(_read(log_path, log_offset).splitlines()[-TAIL_LINES:])
    return f"{what}; last lines of {log_path}:\n{tail}" if tail else f"{what}; {log_path} is empty"
