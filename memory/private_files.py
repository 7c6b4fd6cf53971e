"""Private on-disk state: directories 0700, files 0600, whatever the process umask.

Local indexes (SQLite files and their ``-wal``/``-shm``), outbox entries (full transcripts) and
the dev issuer's keys are readable by their owner only. New directories are created 0700; an
index file is created 0600 before SQLite opens it, and SQLite gives the ``-wal``/``-shm`` files
it creates the database file's mode (checked on this machine, SQLite 3.40); outbox entries are
written through ``tempfile.mkstemp`` (0600). ``secure_tree`` is the start-up check: it tightens
whatever an older version, another tool or a loose umask left behind.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from memory.errors import ConfigurationError

logger = logging.getLogger(__name__)

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create directory ``path`` (and missing parents) with mode 0700; return it."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask; make it exact
    return path


def create_private_file(path: str | os.PathLike[str]) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (an existing file is untouched)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))


def secure_tree(root: str | os.PathLike[str]) -> list[Path]:
    """Create ``root`` 0700 and tighten everything under it: directories 0700, files 0600.

    Symbolic links are neither followed nor changed.

    Returns:
        The paths whose mode was changed.

    Raises:
        ConfigurationError: A path's mode cannot be changed (e.g. it belongs to another user).
    """
    root = private_dir(root)
    changed = [p for p in (root, *_walk(root)) if _tighten(p)]
    if changed:
        logger.warning("state directory permissions tightened", extra={"paths_changed": len(changed)})
    return changed


def _walk(root: Path) -> list[Path]:
    paths: list[Path] = []
    for directory, dirs, files in os.walk(root):
        paths.extend(Path(directory, name) for name in (*dirs, *files))
    return paths


def _tighten(path: Path) -> bool:
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return False
    mode = DIR_MODE if stat.S_ISDIR(info.st_mode) else FILE_MODE
    if stat.S_IMODE(info.st_mode) & ~mode == 0:
        return False
    try:
        os.chmod(path, stat.S_IMODE(info.st_mode) & mode)
    except OSError as exc:
        raise ConfigurationError(
            f"{path} is accessible to other users and its mode cannot be changed ({type(exc).__name__}); "
            "fix its owner or permissions"
        ) from None
    return True
