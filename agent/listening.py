"""The line a server started with ``AGENT_PORT=0`` prints, and how its starter reads it back.

Uvicorn (run through the AgentCore SDK) cannot report the port the OS chose, so the app binds
the socket itself and prints ``agent: listening on http://host:port`` on stderr. Tests, the
demo and benchmarks start servers this way: no port is chosen before the bind, so no other
process can take it in between.
"""

from __future__ import annotations

import re
import sys

_PREFIX = "agent: listening on "
_LINE = re.compile(rf"^{_PREFIX}(http://\S+)$", re.MULTILINE)


def announce(url: str) -> None:
    """Print where the server listens (stderr, flushed: the starter is waiting for it)."""
    print(f"{_PREFIX}{url}", file=sys.stderr, flush=True)  # noqa: T201 - the CLI's output


def listening_url(log: str) -> str | None:
    """The address a server printed in ``log``, or None before it printed one."""
    found = _LINE.search(log)
    return found.group(1) if found else None
