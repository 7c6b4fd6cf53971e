"""Private state on disk: directories 0700 and files 0600 (index files with -wal/-shm, outbox
entries) under the usual 022 umask, and the start-up check that tightens a loose tree."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from memory.errors import ConfigurationError
from memory.index.local import LocalIndex
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.private_files import secure_tree
from memory.types import VectorRecord


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common default (files 0644, directories 0755) unless the code sets modes itself."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """Mode of every path under root (root itself as ".")."""
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(directory, name)
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def test_local_index_files_including_wal_and_shm_are_private(tmp_path: Path) -> None:
    index = LocalIndex(tmp_path / "vectors", "memory-tenant-a", 4)
    index.ensure()
    index.put([VectorRecord(key="k1", vector=[1.0, 0.0, 0.0, 0.0], metadata={"content": "my PIN is 1234"})])
    found = modes(tmp_path / "vectors")
    assert {"memory-tenant-a.sqlite3-wal", "memory-tenant-a.sqlite3-shm"} <= found.keys()
    assert found == {".": 0o700, **{name: 0o600 for name in found if name != "."}}


def test_outbox_directory_and_entries_are_private(tmp_path: Path) -> None:
    outbox = LocalOutbox(tmp_path / "state" / "outbox")
    outbox.put(OutboxEntry("tenant-a", "alice", "orchestrator", "c-1", [{"role": "user", "text": "secret"}]))
    claim = outbox.claim(OutboxEntry("tenant-a", "alice", "orchestrator", "c-1", []).entry_id, "tenant-a")
    assert claim is not None
    outbox.release(claim)
    found = modes(tmp_path / "state" / "outbox")
    folders = {".", "claims", "dead", "erasures"}
    assert {name for name in found if name not in folders} != set() and folders <= found.keys()
    assert all(found[name] == 0o700 for name in folders)
    assert all(mode == 0o600 for name, mode in found.items() if name not in folders)


def test_secure_tree_tightens_a_loose_tree_and_reports_what_it_changed(tmp_path: Path) -> None:
    root = tmp_path / "state"
    (root / "vectors").mkdir(parents=True, mode=0o755)
    (root / "vectors" / "memory-a.sqlite3").write_text("x")
    (root / "vectors" / "memory-a.sqlite3").chmod(0o644)
    (root / "outbox").mkdir(mode=0o777)
    (root / "outbox").chmod(0o777)
    private = root / "outbox" / "entry.json"
    private.write_text("{}")
    private.chmod(0o600)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (root / "link").symlink_to(outside)

    changed = secure_tree(root)

    assert sorted(p.relative_to(tmp_path).as_posix() for p in changed) == [
        "state", "state/outbox", "state/vectors", "state/vectors/memory-a.sqlite3",
    ]
    assert modes(root) == {
        ".": 0o700, "vectors": 0o700, "vectors/memory-a.sqlite3": 0o600, "outbox": 0o700,
        "outbox/entry.json": 0o600, "link": 0o777,
    }
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # the link's target is not ours to change
    assert secure_tree(root) == []


def test_secure_tree_creates_a_missing_state_directory_private(tmp_path: Path) -> None:
    secure_tree(tmp_path / "new" / "state")
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700


def test_a_mode_that_cannot_be_fixed_refuses_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "state"
    root.mkdir(mode=0o755)
    root.chmod(0o755)

    def not_owner(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", not_owner)
    with pytest.raises(ConfigurationError, match="accessible to other users"):
        secure_tree(root)
