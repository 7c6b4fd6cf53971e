"""Where local (offline) state lives by default: outside the source tree, so nothing is uploaded.

The starter toolkit uploads the project directory minus its own fixed ignore list (which skips
``.venv``/``.env`` but not other state folders). Keys, indexes and transcripts therefore never
default to a path under the project: locally they go to the user's state directory
(``$XDG_STATE_HOME/agent-memory`` or ``~/.local/state/agent-memory``); inside the runtime
container (see :func:`in_runtime_container`) to ``/tmp/agent-memory`` (``$TMPDIR`` if set),
the one place the non-root runtime user (uid 1000, ``/app`` owned by root) can write.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

APP_DIR_NAME = "agent-memory"


def in_runtime_container() -> bool:
    """True inside the image the starter toolkit builds (its Dockerfile sets ``DOCKER_CONTAINER=1``).

    The AgentCore SDK binds 0.0.0.0 when ``/.dockerenv`` exists or ``DOCKER_CONTAINER`` is set,
    and its identity helper treats ``DOCKER_CONTAINER == "1"`` as "running in the runtime
    container". We use the latter only: development machines and CI runners are often
    containers themselves (``/.dockerenv`` present) and must keep the local defaults.
    """
    return os.environ.get("DOCKER_CONTAINER") == "1"


def state_root() -> Path:
    """The default root of all local state (see the module docstring)."""
    if in_runtime_container():
        return Path(tempfile.gettempdir()) / APP_DIR_NAME
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / APP_DIR_NAME
