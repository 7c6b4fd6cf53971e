"""``LocalOutbox``: the outbox in a local directory (dev, tests, one host).

Layout under ``directory`` (directories 0700, files 0600, ``memory.private_files``): pending
entries as ``<entry id>.json`` at the top, ``claims/<entry id>.lock`` (``flock``: held while a
process works on the entry, dropped by the kernel when that process dies; unlinked by its holder
on release, so a claimer whose lock lands on a file unlinked meanwhile opens the path again),
``claims/.pending.lock``
(``flock``: held around every change of a pending entry, so ``swap`` compares and writes as one
step for every process on the host),
``dead/<entry id>.json`` and ``erasures/<folder>/<marker id>.json`` (``erasure_folder``).
Every file is written atomically (temp file, fsync, rename, directory fsync): once a write
returns, it survives a crash of the process or the machine. The writer holds an ``flock`` on its
temp file (``.<name>.<random>.tmp``) from before its first byte until after the rename, so a temp
file that is not locked and not empty belongs to a writer that died before its rename (SIGKILL,
power loss): it may hold a whole transcript, no reader ever reads it, and ``pending`` and
``dead_letters`` unlink it (``_drop_dead_temps``), which ``forget`` (``erase``) and every replay
call. A live writer's temp file is never removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from memory.private_files import private_dir
from memory.pipeline.outbox import (
    Claim,
    DeadLetter,
    ErasureMarker,
    OutboxEntry,
    drop_dead_lettered,
    erasure_folder,
    may_cover_user,
    parse_or_none,
    read_entry,
)

logger = logging.getLogger(__name__)

_SUFFIX = ".json"
_TEMP_SUFFIX = ".tmp"
#: An empty temp file may be one its writer created and has not locked yet: it holds no text and
#: is dropped only once older than this.
_EMPTY_TEMP_SECONDS = 600.0


class LocalOutbox:
    """The ``memory.pipeline.outbox.Outbox`` protocol over files under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Open the outbox.

        Args:
            directory: Where the outbox lives (created 0700 with its sub-folders if missing).
        """
        self.directory = private_dir(directory)
        for name in ("claims", "dead", "erasures"):
            private_dir(self.directory / name)

    # -- pending entries ----------------------------------------------------------------------

    def put(self, entry: OutboxEntry) -> str:
        """Write ``entry`` durably (replacing one with the same id); returns its id."""
        self._write(self.directory, entry.entry_id, entry.to_json(), replace_lock=self._pending_change)
        return entry.entry_id

    def get(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """The pending entry, or None if it is not (or no longer) pending."""
        data = self._read(self.directory / f"{entry_id}{_SUFFIX}")
        return None if data is None else read_entry(data, entry_id)

    def pending(self, tenant_id: str | None = None) -> list[OutboxEntry]:
        """Every readable pending entry (of ``tenant_id`` if given), oldest first; temp files of
        writes killed before their rename are dropped first."""
        _drop_dead_temps(self.directory)
        entries = [self.get(path.name[: -len(_SUFFIX)]) for path in self.directory.glob(f"*{_SUFFIX}")]
        found = [e for e in entries if e is not None and (tenant_id is None or e.tenant_id == tenant_id)]
        return sorted(found, key=lambda e: e.created_at)

    def remove(self, entry_id: str, tenant_id: str | None = None) -> None:
        """Delete a pending entry (a missing one is ignored)."""
        with self._pending_change():
            (self.directory / f"{entry_id}{_SUFFIX}").unlink(missing_ok=True)
        _sync_directory(self.directory)

    def swap(self, expected: OutboxEntry, new: OutboxEntry | None) -> bool:
        """Compare-and-set on the pending entry, under the lock every change of one takes."""
        if new is not None and new.entry_id != expected.entry_id:
            raise ValueError("swap replaces an entry by one with the same id")
        path = self.directory / f"{expected.entry_id}{_SUFFIX}"
        with self._pending_change():
            data = self._read(path)
            current = None if data is None else read_entry(data, expected.entry_id)
            if current is None or current.created_at != expected.created_at:
                return False
            if new is None:
                path.unlink()
            else:
                self._write(self.directory, new.entry_id, new.to_json())
        _sync_directory(self.directory)
        return True

    @contextlib.contextmanager
    def _pending_change(self) -> Iterator[None]:
        """Hold ``claims/.pending.lock`` (a fresh open file: excludes other threads too)."""
        fd = os.open(self.directory / "claims" / ".pending.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # -- claims -------------------------------------------------------------------------------

    def claim(self, entry_id: str, tenant_id: str | None = None, *, ttl_seconds: float = 600.0) -> Claim | None:
        """An exclusive ``flock`` on the entry's lock file, or None while another holder has it."""
        path = self.directory / "claims" / f"{entry_id}.lock"
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            if _is_file_at(fd, path):
                return Claim(tenant_id, entry_id, _HeldLock(fd, path))
            os.close(fd)  # its holder released (and unlinked) it after we opened it: open afresh

    def release(self, claim: Claim) -> None:
        """Unlink the claim's lock file while still holding it, then unlock and close it (once)."""
        held: _HeldLock = claim.token
        fd, held.fd = held.fd, None
        if fd is None:
            return
        try:
            os.unlink(held.path)  # ours until closed: whoever opens the path next creates a new file
        except OSError:
            pass
        finally:
            os.close(fd)

    # -- dead letters -------------------------------------------------------------------------

    def dead_letter(self, entry: OutboxEntry, reason: str) -> bool:
        """Write the dead letter first, then drop the pending entry (never neither) if it is still
        this version; a newer one stays and the letter goes (``Outbox.dead_letter``)."""
        self._write(self.directory / "dead", entry.entry_id, DeadLetter(entry, reason).to_json())
        return drop_dead_lettered(self, entry)

    def dead_letters(self, tenant_id: str | None = None) -> list[DeadLetter]:
        """Dead letters (of ``tenant_id`` if given), oldest first; temp files of writes killed
        before their rename are dropped first."""
        _drop_dead_temps(self.directory / "dead")
        letters = []
        for path in (self.directory / "dead").glob(f"*{_SUFFIX}"):
            data = self._read(path)
            letter = None if data is None else parse_or_none(DeadLetter.from_json, data, path.stem)
            if letter is not None and (tenant_id is None or letter.entry.tenant_id == tenant_id):
                letters.append(letter)
        return sorted(letters, key=lambda d: d.dead_at)

    def revive(self, entry_id: str, tenant_id: str | None = None) -> OutboxEntry | None:
        """Put the dead letter's entry back as pending (attempts reset), then drop the letter."""
        path = self.directory / "dead" / f"{entry_id}{_SUFFIX}"
        data = self._read(path)
        letter = None if data is None else parse_or_none(DeadLetter.from_json, data, entry_id)
        if letter is None:
            return None
        entry = dataclasses.replace(letter.entry, attempts=0, open=False)
        self.put(entry)
        self._unlink(path)
        return entry

    def purge(self, entry_id: str, tenant_id: str | None = None) -> bool:
        """Delete a dead letter for good; True if there was one."""
        path = self.directory / "dead" / f"{entry_id}{_SUFFIX}"
        existed = path.exists()
        self._unlink(path)
        return existed

    # -- erasure markers ----------------------------------------------------------------------

    def add_erasure(self, marker: ErasureMarker) -> None:
        """Record an erasure marker durably, in its scope's folder (``erasure_folder``)."""
        folder = self.directory / "erasures" / erasure_folder(marker.user_id)
        if not folder.is_dir():
            private_dir(folder)
            _sync_directory(folder.parent)  # the new folder survives a crash like the marker
        self._write(folder, marker.marker_id, marker.to_json())

    def erasures(self, tenant_id: str | None, user_id: str | None = None) -> list[ErasureMarker]:
        """The tenant's erasure markers; with ``user_id``, only the folders that can cover that
        user (tenant-wide and the user's) and markers filed flat by earlier versions."""
        root = self.directory / "erasures"
        if user_id is None:
            paths: Iterable[Path] = root.rglob(f"*{_SUFFIX}")
        else:
            folders = (root / erasure_folder(None), root / erasure_folder(user_id))
            paths = itertools.chain(root.glob(f"*{_SUFFIX}"), *(f.glob(f"*{_SUFFIX}") for f in folders))
        markers = []
        for path in paths:
            data = self._read(path)
            marker = None if data is None else parse_or_none(ErasureMarker.from_json, data, path.stem)
            if marker is not None and marker.tenant_id == tenant_id and may_cover_user(marker, user_id):
                markers.append(marker)
        return markers

    # -- files --------------------------------------------------------------------------------

    @staticmethod
    def _read(path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            logger.error("outbox file %s is unreadable; leaving it in place", path.name)
            return None

    @staticmethod
    def _write(
        folder: Path,
        name: str,
        data: dict[str, Any],
        replace_lock: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        """Write ``<name>.json`` atomically; the rename (not the write and fsync) under ``replace_lock``."""
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=_TEMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                fcntl.flock(fd, fcntl.LOCK_EX)  # until closed, after the rename: this writer lives
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
                with replace_lock():
                    os.replace(tmp, folder / f"{name}{_SUFFIX}")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _sync_directory(folder)

    @staticmethod
    def _unlink(path: Path) -> None:
        path.unlink(missing_ok=True)
        _sync_directory(path.parent)


@dataclasses.dataclass
class _HeldLock:
    """A local claim's token: the locked file (``fd`` None once released) and its path."""

    fd: int | None
    path: Path


def _is_file_at(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd`` (not unlinked, not replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _drop_dead_temps(folder: Path) -> None:
    """Unlink the temp files in ``folder`` whose writer died before renaming them: not locked
    (``LocalOutbox._write`` locks before writing) and not empty (or empty and old)."""
    dropped = 0
    for path in folder.glob(f".*{_TEMP_SUFFIX}"):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            stat = os.fstat(fd)
            if stat.st_size or time.time() - stat.st_mtime > _EMPTY_TEMP_SECONDS:
                path.unlink()
                dropped += 1
        except BlockingIOError:
            pass  # its writer is alive
        except FileNotFoundError:
            pass  # its writer renamed it meanwhile
        finally:
            os.close(fd)
    if dropped:
        _sync_directory(folder)
        logger.info("outbox: dropped %d temp files of writes killed before their rename", dropped)


def _sync_directory(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
