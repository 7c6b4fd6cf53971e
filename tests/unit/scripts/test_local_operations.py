"""forget, outbox and retention on a local app's state directory (``--backend local``)."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memory.index.local import LocalIndex
from memory.keys import new_conversation_marker
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.tenants import index_name_for
from memory.types import VectorRecord

LOCAL = ("--backend", "local")


def entry(user: str, conversation: str) -> OutboxEntry:
    return OutboxEntry(
        tenant_id="acme", user_id=user, agent_name="orchestrator", conversation_id=conversation,
        transcript=[{"role": "user", "text": f"secret of {user}"}], opened=new_conversation_marker(),
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A local app's state: three memories (two of ann's conversations, one of bob's) and an
    outbox with ann's open checkpoint, bob's closed entry and a dead letter of ann's."""
    index = LocalIndex(tmp_path / "vectors", index_name_for("acme"), 3)
    index.ensure()
    now = int(time.time())
    index.put([
        VectorRecord("m1", [1, 0, 0], {"user_id": "ann", "conversation_id": "c1", "content": "ann one", "stored_at_epoch": now}),
        VectorRecord("m2", [0, 1, 0], {"user_id": "ann", "conversation_id": "c2", "content": "ann two", "stored_at_epoch": now - 40 * 86400}),
        VectorRecord("m3", [0, 0, 1], {"user_id": "bob", "conversation_id": "c3", "content": "bob", "stored_at_epoch": now}),
    ])
    index.close()
    outbox = LocalOutbox(tmp_path / "outbox")
    outbox.put(OutboxEntry(**{**entry("ann", "c4").__dict__, "open": True}))
    outbox.put(entry("bob", "c5"))
    dead = entry("ann", "c6")
    outbox.put(dead)
    outbox.dead_letter(dead, "AccessDenied")
    return tmp_path


def keys(state: Path) -> list[str]:
    index = LocalIndex(state / "vectors", index_name_for("acme"), 3)
    try:
        return [r.key for r in index.list()]
    finally:
        index.close()


def test_forget_a_user_on_the_local_backend_reports_everything_it_removed(state: Path, cli) -> None:
    base = ("forget", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--user", "ann", "--settle-seconds", "0")
    preview = cli(*base)
    assert preview.code == 0 and "2 memories of user ann" in preview.out and "1 outbox entries" in preview.out
    assert keys(state) == ["m1", "m2", "m3"] and len(LocalOutbox(state / "outbox").pending()) == 2
    done = cli(*base, "--yes")
    assert done.code == 0, done.err
    for line in ("erasure marker", "1 outbox entries of user ann", "1 dead letters of user ann", "2 memories of user ann"):
        assert line in done.out
    assert "secret" not in done.out
    outbox = LocalOutbox(state / "outbox")
    assert keys(state) == ["m3"] and [e.user_id for e in outbox.pending()] == ["bob"]
    assert outbox.dead_letters() == [] and {m.user_id for m in outbox.erasures("acme")} == {"ann"}


def test_forget_reports_both_erasure_markers_it_wrote(state: Path, cli) -> None:
    base = ("forget", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--user", "ann", "--settle-seconds", "0")
    done = cli(*base, "--yes")
    assert done.code == 0, done.err
    written = LocalOutbox(state / "outbox").erasures("acme")
    assert len(written) == 2
    for marker in written:
        assert f"erasure marker {marker.marker_id} for user ann" in done.out
    first, second = [line for line in done.out.splitlines() if "erasure marker" in line]
    assert first.endswith("(written before deleting)")  # the two lines once read the same
    assert second.endswith("(written after deleting: covers conversations begun meanwhile)")


def test_forget_one_conversation_or_the_whole_tenant(state: Path, cli) -> None:
    base = ("forget", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--yes", "--settle-seconds", "0")
    assert cli(*base, "--user", "ann", "--conversation", "c2").code == 0
    assert keys(state) == ["m1", "m3"]
    refused = cli(*base, "--all-users", "--conversation", "c1")
    assert refused.code == 2 and "--conversation needs --user" in refused.err and keys(state) == ["m1", "m3"]
    tenant = cli(*base, "--all-users")
    assert tenant.code == 0 and "2 memories of every user" in tenant.out
    assert keys(state) == [] and LocalOutbox(state / "outbox").pending() == []


def test_outbox_list_retry_and_purge(state: Path, cli) -> None:
    base = (*LOCAL, "--state-dir", str(state))
    listed = cli("outbox", "list", *base)
    assert listed.code == 0 and listed.out.count("PENDING") == 2 and "reason AccessDenied" in listed.out
    assert "secret" not in listed.out
    outbox = LocalOutbox(state / "outbox")
    (letter,) = outbox.dead_letters()
    retried = cli("outbox", "retry", *base, "--entry", letter.entry.entry_id)
    assert retried.code == 0 and "back to pending" in retried.out
    assert outbox.dead_letters() == [] and len(outbox.pending()) == 3
    outbox.dead_letter(letter.entry, "NotFound")
    unconfirmed = cli("outbox", "purge", *base)
    assert "WOULD DELETE" in unconfirmed.out and len(outbox.dead_letters()) == 1
    purged = cli("outbox", "purge", *base, "--yes")
    assert purged.code == 0 and "DELETED" in purged.out and outbox.dead_letters() == []


def test_retry_never_puts_an_older_transcript_over_a_newer_pending_one(state: Path, cli) -> None:
    """A process that writes a newer version of a dead-lettered conversation purges the dead
    letter only after that version is durable: killed in between (or its purge refused), both
    are left. Retrying then put the older transcript back over the newer one (the turns since
    lost), although the README promises `outbox retry` never does. The superseded letter stays
    for `outbox purge`; the newer entry is stored at the next replay."""
    outbox = LocalOutbox(state / "outbox")
    (letter,) = outbox.dead_letters()
    newer = dataclasses.replace(
        letter.entry, transcript=[*letter.entry.transcript, {"role": "user", "text": "and later"}],
        created_at=(datetime.now(timezone.utc) + timedelta(seconds=5)).isoformat(),
    )  # fmt: skip
    outbox.put(newer)
    done = cli("outbox", "retry", *LOCAL, "--state-dir", str(state))
    assert done.code == 0, done.err
    assert outbox.get(newer.entry_id) == newer, done.out
    assert "newer version" in done.out and len(outbox.dead_letters()) == 1


def test_retention_sweep_deletes_only_expired_memories(state: Path, cli) -> None:
    base = ("retention", "sweep", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--ttl-days", "30")
    preview = cli(*base)
    assert "1 memories older than 30 days" in preview.out and keys(state) == ["m1", "m2", "m3"]
    done = cli(*base, "--yes")
    assert done.code == 0 and "1 expired memories" in done.out and keys(state) == ["m1", "m3"]


def test_retention_preview_counts_what_the_sweep_deletes(state: Path, cli) -> None:
    """A vector without any date (written by another tool, e.g. strands-s3-vectors-memory's
    summaries) is never retrieved under a TTL, so the sweep deletes it too
    (``scoping.is_expired``), and the preview counts it the same way."""
    index = LocalIndex(state / "vectors", index_name_for("acme"), 3)
    index.put([VectorRecord("m4", [1, 1, 0], {"user_id": "ann", "content": "undated"})])
    index.close()
    base = ("retention", "sweep", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--ttl-days", "30")
    preview = cli(*base)
    done = cli(*base, "--yes")
    assert "2 memories older than 30 days" in preview.out, preview.out
    assert "2 expired memories" in done.out and keys(state) == ["m1", "m3"]


def test_a_state_dir_without_an_outbox_folder_has_no_dead_letters_to_warn_about(state: Path, cli) -> None:
    """The S3 sweep warns when it was not given the outbox; a local state dir is the outbox, and
    one without an outbox folder holds no dead letters: nothing to pass, nothing to warn about."""
    import shutil

    shutil.rmtree(state / "outbox")
    done = cli("retention", "sweep", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--ttl-days", "30", "--yes")
    assert done.code == 0 and "1 expired memories" in done.out and "WARNING" not in done.out, done.out


def test_retention_sweep_purges_dead_letters_of_expired_conversations(state: Path, cli) -> None:
    """A dead letter holds a whole transcript: under a TTL it may not outlive the memories it
    would have become (its conversation's last change, ``created_at``, is what counts)."""
    outbox = LocalOutbox(state / "outbox")
    old = dataclasses.replace(entry("bob", "c7"), created_at=(datetime.now(timezone.utc) - timedelta(days=40)).isoformat())
    outbox.put(old)
    outbox.dead_letter(old, "AccessDenied")
    base = ("retention", "sweep", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--ttl-days", "30")
    preview = cli(*base)
    assert "1 dead letters older than 30 days" in preview.out, preview.out
    assert len(outbox.dead_letters()) == 2
    done = cli(*base, "--yes")
    assert done.code == 0 and "1 expired dead letters" in done.out, done.out
    assert [d.entry.conversation_id for d in outbox.dead_letters()] == ["c6"]  # the recent one stays


def test_a_mistyped_tenant_on_the_local_backend_names_the_tenants_there(state: Path, cli) -> None:
    """The S3 hint (`tenant list`, which needs --bucket) does not help offline: list the local ones."""
    for command in (("forget", "--user", "ann"), ("retention", "sweep", "--ttl-days", "30", "--yes")):
        done = cli(*command, *LOCAL, "--state-dir", str(state), "--tenant", "acmee")
        assert done.code == 1, done.out
        assert "tenants with an index here: acme" in done.err and "tenant list" not in done.err


@pytest.mark.parametrize("who", [("--user", ""), ("--user", "ann", "--conversation", "")])
def test_an_empty_user_or_conversation_is_refused_not_reported_as_nothing_to_erase(state: Path, cli, who) -> None:
    """``--conversation ""`` covered conversation "" only, while the report named the whole user:
    'no memories of user ann', exit 0, with ann's memories all kept."""
    base = ("forget", *LOCAL, "--state-dir", str(state), "--tenant", "acme", "--settle-seconds", "0", *who)
    with pytest.raises(SystemExit) as preview:
        cli(*base)
    with pytest.raises(SystemExit) as erase:
        cli(*base, "--yes")
    assert preview.value.code == erase.value.code == 2
    assert keys(state) == ["m1", "m2", "m3"] and LocalOutbox(state / "outbox").erasures("acme") == []


@pytest.mark.parametrize("command", [("retry",), ("purge",), ("purge", "--yes")])
def test_an_entry_id_that_names_no_dead_letter_is_reported_missing(state: Path, cli, command) -> None:
    """``outbox purge --entry A --entry <typo> --yes`` deleted A and said nothing of the typo
    (exit 0): the dead letter meant stayed, and the operator read the purge as done."""
    base = (*LOCAL, "--state-dir", str(state))
    (letter,) = LocalOutbox(state / "outbox").dead_letters()
    result = cli("outbox", *command, *base, "--entry", letter.entry.entry_id, "--entry", "sum-typo")
    assert result.code == 1, result.out
    assert "MISSING" in result.out and "sum-typo" in result.out and letter.entry.entry_id in result.out
    assert "everything is already as intended" not in result.out
