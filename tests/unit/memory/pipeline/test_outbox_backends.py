"""Both outbox backends obey one contract: entries, claims, dead letters, erasure markers.

The S3 backend runs under moto. moto 5.2.5 enforces S3's conditional writes the way the
service documents them (checked first, below): ``PutObject`` with ``If-None-Match: *`` on an
existing key and ``If-Match`` with a stale ETag fail with 412 PreconditionFailed, and so does a
``DeleteObject`` with a stale ``If-Match``. The claims are built on exactly that.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from memory.aws import make_client
from memory.errors import AccessDenied, InvalidTenantId, MemoryLibraryError
from memory.pipeline.erasure import erase
from memory.pipeline.outbox import ErasureMarker, Outbox, OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.outbox_s3 import S3Outbox

BUCKET = "outbox-test-bucket"


def entry(conversation: str = "c1", user: str = "alice", tenant: str | None = "acme", **kwargs: Any) -> OutboxEntry:
    return OutboxEntry(
        tenant_id=tenant, user_id=user, agent_name="orchestrator", conversation_id=conversation,
        transcript=[{"role": "user", "text": f"secret of {user}"}], **kwargs,
    )


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(params=["local", "s3"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outbox]:
    if request.param == "local":
        yield LocalOutbox(tmp_path / "outbox")
        return
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3Outbox(lambda _tenant: client, BUCKET, lister=client)


def test_moto_enforces_s3_conditional_writes(s3) -> None:
    first = s3.put_object(Bucket=BUCKET, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"2", IfNoneMatch="*")
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=BUCKET, Key="k", Body=b"3", IfMatch='"not-the-etag"')
    with pytest.raises(ClientError) as stale_delete:
        s3.delete_object(Bucket=BUCKET, Key="k", IfMatch='"not-the-etag"')
    assert {e.value.response["Error"]["Code"] for e in (exists, stale, stale_delete)} == {"PreconditionFailed"}
    s3.put_object(Bucket=BUCKET, Key="k", Body=b"4", IfMatch=first["ETag"])
    assert s3.get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"4"


def test_entries_round_trip_per_tenant_and_are_replaced_by_id(outbox: Outbox) -> None:
    outbox.put(entry("c1", open=True))
    outbox.put(entry("c1"))  # the closed entry replaces the checkpoint
    outbox.put(entry("c2", tenant="globex"))
    outbox.put(entry("c3", tenant=None))
    assert sorted(e.conversation_id for e in outbox.pending()) == ["c1", "c2", "c3"]
    (acme,) = outbox.pending("acme")
    assert not acme.open and outbox.get(acme.entry_id, "acme") == acme
    outbox.remove(acme.entry_id, "acme")
    outbox.remove(acme.entry_id, "acme")  # missing is fine
    assert outbox.get(acme.entry_id, "acme") is None and outbox.pending("acme") == []


def test_swap_replaces_or_removes_only_the_version_it_was_given(outbox: Outbox) -> None:
    """``swap`` is a compare-and-set on the entry's version (``created_at``): nothing is written
    over a newer version, and nothing is written back once the entry is gone (e.g. forgotten)."""
    old = entry(open=True, created_at="2026-03-02T09:00:00+00:00")
    newer = dataclasses.replace(old, created_at="2026-03-02T09:05:00+00:00")
    outbox.put(old)
    assert outbox.swap(old, dataclasses.replace(old, attempts=1))
    assert outbox.get(old.entry_id, "acme") == dataclasses.replace(old, attempts=1)
    outbox.put(newer)
    assert not outbox.swap(old, None) and not outbox.swap(old, dataclasses.replace(old, attempts=2))
    assert outbox.get(old.entry_id, "acme") == newer
    assert outbox.swap(newer, None) and outbox.get(old.entry_id, "acme") is None
    assert not outbox.swap(newer, dataclasses.replace(newer, attempts=1))  # gone: not re-created
    assert outbox.pending("acme") == []


@pytest.mark.parametrize("replacement", ["remove", "rewrite"])
def test_s3_a_version_written_between_the_swaps_read_and_write_is_kept(s3, replacement: str) -> None:
    """The swap's write carries ``If-Match`` with the ETag it read: a version written in between
    (a live process's checkpoint) fails it with 412 instead of being deleted or overwritten."""
    outbox = S3Outbox(lambda _tenant: s3, BUCKET, lister=s3)
    old = entry(open=True, created_at="2026-03-02T09:00:00+00:00")
    newer = dataclasses.replace(old, created_at="2026-03-02T09:05:00+00:00", transcript=[{"role": "user", "text": "new"}])
    outbox.put(old)
    operation = "DeleteObject" if replacement == "remove" else "PutObject"
    written: list[str] = []

    def write_newer_first(params: dict[str, Any], **_: Any) -> None:
        if "IfMatch" in params and not written:
            written.append(params["Key"])
            S3Outbox(lambda _tenant: s3, BUCKET).put(newer)

    s3.meta.events.register(f"before-parameter-build.s3.{operation}", write_newer_first, unique_id="newer-version")
    try:
        swapped = outbox.swap(old, None if replacement == "remove" else dataclasses.replace(old, attempts=1))
    finally:
        s3.meta.events.unregister(f"before-parameter-build.s3.{operation}", unique_id="newer-version")
    assert written and not swapped and outbox.get(old.entry_id, "acme") == newer


@pytest.mark.parametrize("replacement", ["remove", "rewrite"])
def test_local_a_version_written_during_a_swap_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       replacement: str) -> None:
    """Another writer of the same directory (a thread here; a process takes the same ``flock``)
    that puts a newer version while a swap has read the old one waits for the swap to finish."""
    outbox = LocalOutbox(tmp_path / "outbox")
    old = entry(open=True, created_at="2026-03-02T09:00:00+00:00")
    newer = dataclasses.replace(old, created_at="2026-03-02T09:05:00+00:00", transcript=[{"role": "user", "text": "new"}])
    outbox.put(old)
    read = LocalOutbox._read
    writers: list[threading.Thread] = []

    def read_then_let_a_writer_in(path: Path) -> Any:
        data = read(path)
        if path.name == f"{old.entry_id}.json" and not writers:
            writers.append(threading.Thread(target=LocalOutbox(tmp_path / "outbox").put, args=(newer,)))
            writers[0].start()
            writers[0].join(0.3)  # without mutual exclusion the put lands now, inside the swap
        return data

    monkeypatch.setattr(LocalOutbox, "_read", staticmethod(read_then_let_a_writer_in))
    outbox.swap(old, None if replacement == "remove" else dataclasses.replace(old, attempts=1))
    writers[0].join(5)
    monkeypatch.undo()
    assert outbox.get(old.entry_id, "acme") == newer


# A second process writes alice's entry (or dead-letters it) and is SIGKILLed at the rename:
# its temp file holds the whole transcript.
KILLED_AT_RENAME = """
import os, signal, sys
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
outbox = LocalOutbox(sys.argv[1])
alice = OutboxEntry(tenant_id="acme", user_id="alice", agent_name="orchestrator", conversation_id="c1",
                    transcript=[{"role": "user", "text": "secret of alice"}])
os.replace = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
outbox.dead_letter(alice, "AccessDenied") if sys.argv[2] == "dead" else outbox.put(alice)
"""


def files_holding(directory: Path, text: str) -> list[str]:
    return [p.name for p in directory.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def kill_a_writer_at_its_rename(directory: Path, where: str) -> None:
    child = subprocess.run([sys.executable, "-c", KILLED_AT_RENAME, str(directory), where], timeout=60)
    assert child.returncode == -9
    (temp,) = files_holding(directory, "secret of alice")
    assert temp.endswith(".tmp")


@pytest.mark.parametrize("where", ["pending", "dead"])
def test_local_forget_removes_the_temp_file_of_a_write_killed_before_its_rename(tmp_path: Path, where: str) -> None:
    directory = tmp_path / "outbox"
    LocalOutbox(directory).put(entry(user="bob"))
    kill_a_writer_at_its_rename(directory, where)
    erase(LocalOutbox(directory), None, tenant_id="acme", user_id="alice")
    assert files_holding(directory, "secret of alice") == []
    assert [e.user_id for e in LocalOutbox(directory).pending("acme")] == ["bob"]


def test_local_replay_drops_the_temp_file_of_a_write_killed_before_its_rename(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    kill_a_writer_at_its_rename(directory, "pending")
    assert LocalOutbox(directory).pending() == []
    assert list(directory.glob(".*.tmp")) == []


def test_local_a_live_writers_temp_file_is_never_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer paused between its fsync and its rename (another thread; a process holds the
    same ``flock``) keeps its temp file while another outbox lists and erases."""
    directory = tmp_path / "outbox"
    at_rename, go_on = threading.Event(), threading.Event()
    replace = os.replace

    alice = entry()

    def slow_replace(source: Any, target: Any) -> None:
        if Path(target).name == f"{alice.entry_id}.json":
            at_rename.set()
            go_on.wait(10)
        replace(source, target)

    monkeypatch.setattr(os, "replace", slow_replace)
    writer = threading.Thread(target=LocalOutbox(directory).put, args=(alice,))
    writer.start()
    assert at_rename.wait(10)
    other = LocalOutbox(directory)
    assert other.pending() == [] and other.dead_letters() == []
    erase(other, None, tenant_id="acme", user_id="bob")
    assert len(list(directory.glob(".*.tmp"))) == 1
    go_on.set()
    writer.join(10)
    assert other.get(alice.entry_id) == alice


def test_a_claim_is_exclusive_until_released(outbox: Outbox) -> None:
    e = entry()
    outbox.put(e)
    first = outbox.claim(e.entry_id, "acme")
    assert first is not None and outbox.claim(e.entry_id, "acme") is None
    outbox.release(first)
    second = outbox.claim(e.entry_id, "acme")
    assert second is not None
    outbox.release(second)
    outbox.release(second)  # idempotent


def test_racing_claimers_get_one_claim(outbox: Outbox) -> None:
    e = entry()
    outbox.put(e)
    barrier = threading.Barrier(8)
    won: list[Any] = []

    def race() -> None:
        barrier.wait()
        claim = outbox.claim(e.entry_id, "acme")
        if claim is not None:
            won.append(claim)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_local_a_released_claim_leaves_no_lock_file(tmp_path: Path) -> None:
    # A long-lived local server claims every conversation it summarizes: one empty lock file
    # per conversation was left in claims/ forever.
    outbox = LocalOutbox(tmp_path / "outbox")
    for n in range(3):
        e = entry(f"c{n}")
        outbox.put(e)
        claim = outbox.claim(e.entry_id, "acme")
        assert claim is not None
        outbox.release(claim)
        outbox.release(claim)  # idempotent
    assert sorted(p.name for p in (tmp_path / "outbox" / "claims").iterdir()) == [".pending.lock"]


def test_local_a_claimer_that_locks_a_released_lock_file_does_not_share_the_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # B opens the lock file, A releases the claim (unlinking that file), C claims (a new file):
    # B's flock then succeeds on the unlinked file, which must not count as the claim.
    directory = tmp_path / "outbox"
    e = entry()
    LocalOutbox(directory).put(e)
    a, c = LocalOutbox(directory), LocalOutbox(directory)
    first = a.claim(e.entry_id, "acme")
    assert first is not None
    opened, go_on = threading.Event(), threading.Event()
    real_open = os.open

    def open_then_pause(path: Any, *args: Any, **kwargs: Any) -> int:
        fd = real_open(path, *args, **kwargs)
        if Path(path).name == f"{e.entry_id}.lock" and threading.current_thread().name == "claimer-b" \
                and not opened.is_set():
            opened.set()
            go_on.wait(10)
        return fd

    monkeypatch.setattr(os, "open", open_then_pause)
    b_result: list[Any] = []
    b = threading.Thread(target=lambda: b_result.append(LocalOutbox(directory).claim(e.entry_id, "acme")),
                         name="claimer-b")
    b.start()
    assert opened.wait(10)
    a.release(first)
    third = c.claim(e.entry_id, "acme")
    assert third is not None
    go_on.set()
    b.join(10)
    assert b_result == [None]  # C holds the claim
    c.release(third)


def test_s3_claim_expires_and_a_stale_holder_cannot_release_its_successors(s3) -> None:
    now = [1000.0]
    dead = S3Outbox(lambda _t: s3, BUCKET, clock=lambda: now[0])
    alive = S3Outbox(lambda _t: s3, BUCKET, clock=lambda: now[0])
    e = entry()
    dead.put(e)
    stale = dead.claim(e.entry_id, "acme", ttl_seconds=60)
    assert stale is not None and alive.claim(e.entry_id, "acme", ttl_seconds=60) is None
    now[0] += 61  # the holder died: its lease expired
    taken = alive.claim(e.entry_id, "acme", ttl_seconds=60)
    assert taken is not None
    dead.release(stale)  # If-Match on the old ETag: the successor's lease stays
    assert dead.claim(e.entry_id, "acme", ttl_seconds=60) is None
    alive.release(taken)
    assert dead.claim(e.entry_id, "acme") is not None


@contextlib.contextmanager
def response_lost_once(s3: Any, matches: Callable[[dict[str, Any]], bool]) -> Iterator[list[str]]:
    """The first PutObject that ``matches`` is sent again by botocore as if its response had been
    lost (S3 committed it); yields the url paths retried."""
    retried: list[str] = []

    def retry_once(response: Any, request_dict: dict[str, Any], **_: Any) -> int | None:
        if matches(request_dict) and not retried:
            retried.append(request_dict["url_path"])
            return 0  # botocore's needs-retry answer: send the request again after 0 s
        return None

    s3.meta.events.register("needs-retry.s3.PutObject", retry_once, unique_id="response-lost-once")
    try:
        yield retried
    finally:
        s3.meta.events.unregister("needs-retry.s3.PutObject", unique_id="response-lost-once")


def test_s3_claim_whose_response_was_lost_and_retried_by_botocore_is_still_ours(s3) -> None:
    """S3 commits the claim's conditional PUT, the response is lost (a read timeout), botocore
    sends it again and S3 answers 412 to the retry: the lease is this process's own, so the
    claim succeeds (refusing it left the entry unsummarized until another process replayed it)."""
    outbox = S3Outbox(lambda _t: s3, BUCKET)
    e = entry()
    outbox.put(e)
    with response_lost_once(s3, lambda request: "/claims/" in request["url_path"]) as retried:
        claim = outbox.claim(e.entry_id, "acme")
    assert retried, "the claim's PUT was not retried"
    assert claim is not None
    assert S3Outbox(lambda _t: s3, BUCKET).claim(e.entry_id, "acme") is None  # and no one else's
    outbox.release(claim)
    assert S3Outbox(lambda _t: s3, BUCKET).claim(e.entry_id, "acme") is not None


def test_s3_takeover_of_an_expired_claim_whose_response_was_lost_is_still_ours(s3) -> None:
    """The same for the If-Match PUT that takes over a dead holder's expired lease."""
    now = [1000.0]
    dead = S3Outbox(lambda _t: s3, BUCKET, clock=lambda: now[0])
    taker = S3Outbox(lambda _t: s3, BUCKET, clock=lambda: now[0])
    e = entry()
    dead.put(e)
    assert dead.claim(e.entry_id, "acme", ttl_seconds=60) is not None
    now[0] += 61
    with response_lost_once(s3, lambda request: "If-Match" in request["headers"]) as retried:
        claim = taker.claim(e.entry_id, "acme", ttl_seconds=60)
    assert retried, "the takeover PUT was not retried"
    assert claim is not None and dead.claim(e.entry_id, "acme", ttl_seconds=60) is None


def test_s3_objects_are_encrypted_and_under_the_tenant_prefix(s3) -> None:
    outbox = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
    e = entry()
    outbox.put(e)
    outbox.add_erasure(ErasureMarker(tenant_id="acme", user_id="bob"))
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert all(k.startswith("obx/acme/") for k in keys) and f"obx/acme/pending/{e.entry_id}.json" in keys
    assert {s3.head_object(Bucket=BUCKET, Key=k)["ServerSideEncryption"] for k in keys} == {"AES256"}
    kms = S3Outbox(lambda _t: s3, BUCKET, prefix="kms", kms_key_id="alias/outbox")
    sent: list[dict[str, Any]] = []
    s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: sent.append(dict(params)))
    kms.put(e)
    assert sent[-1]["ServerSideEncryption"] == "aws:kms" and sent[-1]["SSEKMSKeyId"] == "alias/outbox"


@pytest.mark.parametrize("tenant", ["", "acme/claims", "../globex", "Acme", "a" * 57])
def test_s3_a_tenant_string_that_is_not_a_tenant_id_never_becomes_a_key(s3, tenant: str) -> None:
    """The tenant segment is all that keeps tenants' keys apart when one client serves them all
    (single-credential deployments, the operator's CLI): a string that is not a tenant id
    ("acme/claims" would land in acme's claims folder) is refused before any request is sent."""
    outbox = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
    sent: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: sent.append(model.name))
    calls: list[Callable[[], object]] = [
        lambda: outbox.put(entry(tenant=tenant)),
        lambda: outbox.pending(tenant),
        lambda: outbox.claim("k", tenant),
        lambda: outbox.add_erasure(ErasureMarker(tenant_id=tenant, user_id="bob")),
        lambda: outbox.erasures(tenant, "bob"),
    ]
    for call in calls:
        with pytest.raises(InvalidTenantId):
            call()
    assert sent == []


def test_s3_every_request_for_a_tenants_objects_is_made_with_that_tenants_client(s3) -> None:
    """In the multi-tenant app ``client_for(tenant)`` holds the tenant's TVM credentials, which IAM
    confines to the tenant's prefix; a request made with the app's own client (``lister``) would
    not be confined. Only the tenant's client touches its objects."""
    clients = {tenant: make_client("s3", region="us-east-1") for tenant in ("acme", None)}
    sent: dict[str | None, list[str]] = {tenant: [] for tenant in clients}
    for tenant, client in clients.items():
        client.meta.events.register(
            "provide-client-params.s3.*",
            lambda params, model, _tenant=tenant, **_: sent[_tenant].append(
                f"{model.name} {params.get('Key') or params.get('Prefix')}"
            ),
        )
    outbox = S3Outbox(lambda tenant: clients[tenant], BUCKET, prefix="obx", lister=clients[None])
    a, b = entry("c1"), entry("c2")
    outbox.put(a)
    outbox.put(b)
    claim = outbox.claim(a.entry_id, "acme")
    assert claim is not None
    outbox.release(claim)
    assert outbox.swap(a, dataclasses.replace(a, attempts=1))
    assert outbox.dead_letter(b, "AccessDenied")
    assert outbox.revive(b.entry_id, "acme") is not None
    outbox.dead_letter(b, "AccessDenied")
    assert outbox.purge(b.entry_id, "acme")
    assert outbox.erasures("acme", "alice") == [] and len(outbox.pending("acme")) == 1
    outbox.remove(a.entry_id, "acme")
    operations = {call.split()[0] for call in sent["acme"]}
    assert {"PutObject", "GetObject", "DeleteObject", "ListObjectsV2"} <= operations, sent["acme"]
    assert all(call.split()[1].startswith("obx/acme/") for call in sent["acme"]), sent["acme"]
    assert sent[None] == []


def test_dead_letters_keep_the_reason_and_can_be_revived_or_purged(outbox: Outbox) -> None:
    a, b = entry("a", attempts=4), entry("b")
    outbox.put(a)
    outbox.put(b)
    outbox.dead_letter(a, "AccessDenied")
    assert [e.conversation_id for e in outbox.pending()] == ["b"]
    (letter,) = outbox.dead_letters()
    assert letter.reason == "AccessDenied" and letter.entry == a
    revived = outbox.revive(a.entry_id, "acme")
    assert revived == dataclasses.replace(a, attempts=0) and outbox.dead_letters() == []
    outbox.dead_letter(b, "NotFound")
    assert outbox.purge(b.entry_id, "acme") and not outbox.purge(b.entry_id, "acme")
    assert [e.conversation_id for e in outbox.pending()] == ["a"]


def test_erasure_markers_cover_conversations_started_before_them(outbox: Outbox) -> None:
    before = entry("c1", opened="2026-01-01T00:00:00.000+00:00~00000001")
    after = entry("c2", opened="2026-01-03T00:00:00.000+00:00~00000002")
    marker = ErasureMarker(tenant_id="acme", user_id="alice", erased_at="2026-01-02T00:00:00+00:00")
    outbox.add_erasure(marker)
    (stored,) = outbox.erasures("acme")
    assert stored == marker and outbox.erasures("globex") == []
    assert stored.covers(before) and not stored.covers(after)
    assert not stored.covers(dataclasses.replace(before, user_id="bob"))
    assert not stored.covers(dataclasses.replace(before, tenant_id="globex"))
    one = ErasureMarker(tenant_id="acme", user_id="alice", conversation_id="c9", erased_at=marker.erased_at)
    assert not one.covers(before) and one.covers(dataclasses.replace(before, conversation_id="c9"))
    tenant = ErasureMarker(tenant_id="acme", erased_at=marker.erased_at)
    assert tenant.covers(dataclasses.replace(before, user_id="bob"))


def test_a_users_erasure_check_reads_only_markers_that_can_cover_them(outbox: Outbox) -> None:
    """Markers are filed per erased user (and one folder for tenant-wide erasures): the check for
    one user's conversation returns that user's and the tenant-wide markers, never the others'."""
    others = [ErasureMarker(tenant_id="acme", user_id=f"user-{n}") for n in range(30)]
    mine = ErasureMarker(tenant_id="acme", user_id="alice", conversation_id="c7")
    everyone = ErasureMarker(tenant_id="acme")
    for marker in (*others, mine, everyone, ErasureMarker(tenant_id="globex", user_id="alice")):
        outbox.add_erasure(marker)
    by_id = lambda markers: sorted(m.marker_id for m in markers)  # noqa: E731
    assert by_id(outbox.erasures("acme", "alice")) == by_id([mine, everyone])
    assert by_id(outbox.erasures("acme", "nobody")) == by_id([everyone])
    assert by_id(outbox.erasures("acme")) == by_id([*others, mine, everyone])
    assert [m.tenant_id for m in outbox.erasures("globex", "alice")] == ["globex"]


def test_markers_filed_flat_by_earlier_versions_still_cover_every_user(outbox: Outbox, tmp_path: Path) -> None:
    """Before per-user folders a marker was ``erasures/<id>.json``: it must still be honoured."""
    legacy = ErasureMarker(tenant_id="acme", user_id="alice")
    if isinstance(outbox, LocalOutbox):
        LocalOutbox._write(outbox.directory / "erasures", legacy.marker_id, legacy.to_json())
    else:
        assert isinstance(outbox, S3Outbox)
        outbox._put("acme", f"{outbox.tenant_prefix('acme')}erasures/{legacy.marker_id}.json", legacy.to_json())
    assert outbox.erasures("acme", "alice") == [legacy] and outbox.erasures("acme") == [legacy]
    assert outbox.erasures("acme", "bob") == []  # read, but it cannot cover bob


def test_s3_erasure_check_of_a_fresh_process_does_not_read_other_users_markers(s3) -> None:
    """Every AgentCore session is a fresh process: its first check must not GET the tenant's
    whole erasure history. One LIST by folder, one LIST per relevant folder, one GET per marker
    that can cover the user; nothing for the 40 other erased users."""
    writer = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
    for n in range(40):
        writer.add_erasure(ErasureMarker(tenant_id="acme", user_id=f"user-{n}"))
    writer.add_erasure(ErasureMarker(tenant_id="acme", user_id="alice"))
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    fresh = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
    assert [m.user_id for m in fresh.erasures("acme", "alice")] == ["alice"]
    assert sorted(calls) == ["GetObject", "ListObjectsV2", "ListObjectsV2"]
    calls.clear()
    assert fresh.erasures("acme", "bob") == [] and calls == ["ListObjectsV2"]


@pytest.mark.parametrize("flat_markers", [0, 7])
def test_s3_erasure_check_lists_the_same_few_pages_however_many_users_were_erased(s3, flat_markers: int) -> None:
    """S3 lists 1,000 keys or folders a page, and a check that listed every user's folder grew a
    page per 1,000 erased users, twice per stored conversation. Pages of 5 here: 60 erased users
    are 13 pages of folders, yet each check reads only the pages before the first ``u-`` folder
    (the tenant-wide folder and markers filed flat by earlier versions sort first), then at most
    the tenant-wide folder and the user's own, and still finds every marker that covers the user."""
    writer = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
    users = [f"user-{n}" for n in range(60)]
    mine = {user: ErasureMarker(tenant_id="acme", user_id=user) for user in users}
    everyone = ErasureMarker(tenant_id="acme")
    for marker in (*mine.values(), everyone):
        writer.add_erasure(marker)
    flat = [ErasureMarker(tenant_id="acme", user_id=users[n]) for n in range(flat_markers)]
    for marker in flat:
        writer._put("acme", f"{writer.tenant_prefix('acme')}erasures/{marker.marker_id}.json", marker.to_json())
    lists: list[str] = []

    def small_pages(params: dict[str, Any], **_: Any) -> None:  # S3's 1,000 per page, scaled down
        params["MaxKeys"] = min(params.get("MaxKeys", 1000), 5)
        lists.append(params["Prefix"])

    s3.meta.events.register("before-parameter-build.s3.ListObjectsV2", small_pages)
    pages_before_user_folders = -(-(1 + flat_markers + 1) // 5)
    for user in (*users[::4], "nobody"):  # folders are named by a digest: these fall all over the listing
        fresh = S3Outbox(lambda _t: s3, BUCKET, prefix="obx")
        lists.clear()
        expected = {everyone.marker_id, *(m.marker_id for m in flat if m.user_id == user)}
        expected |= {mine[user].marker_id} if user in mine else set()
        assert {m.marker_id for m in fresh.erasures("acme", user)} == expected
        assert len(lists) <= pages_before_user_folders + 2, (user, lists)


def test_s3_a_folder_that_is_not_a_tenant_does_not_stop_the_replay(s3) -> None:
    outbox = S3Outbox(lambda _t: s3, BUCKET, prefix="obx", lister=s3)
    e = entry()
    outbox.put(e)
    s3.put_object(Bucket=BUCKET, Key="obx/Backup_2026/pending/x.json", Body=b"{}")  # e.g. an operator's copy
    assert outbox.tenants() == ["acme"] and [p.entry_id for p in outbox.pending()] == [e.entry_id]


def test_s3_a_tenant_whose_outbox_cannot_be_read_does_not_hide_the_others(s3, caplog) -> None:
    """The replay lists every tenant's prefix with that tenant's credentials: one tenant whose
    credentials are refused (offboarded, its role changed) or whose STS call fails must not keep
    every other tenant's conversations from being stored at each start. Asked for by name, the
    failure is still raised (the operator's ``outbox list --tenant``)."""
    def client_for(tenant: str | None) -> Any:
        if tenant == "globex":
            raise AccessDenied("AssumeRole refused for tenant globex")
        return s3

    outbox = S3Outbox(client_for, BUCKET, lister=s3)
    acme, initech = entry("c1"), entry("c2", tenant="initech")
    for e in (acme, initech):
        outbox.put(e)
    s3.put_object(Bucket=BUCKET, Key="outbox/globex/pending/x.json", Body=b"{}")
    assert outbox.tenants() == ["acme", "globex", "initech"]
    with caplog.at_level("WARNING", logger="memory.pipeline.outbox_s3"):
        assert sorted(e.conversation_id for e in outbox.pending()) == ["c1", "c2"]
    assert "globex" in caplog.text and "AccessDenied" in caplog.text
    with pytest.raises(AccessDenied):
        outbox.pending("globex")


def test_s3_replay_assumes_the_role_only_of_tenants_with_pending_entries(s3, fake_store) -> None:
    """Which tenants have pending entries is listed with the app's own credentials (the runtime
    role may list the whole bucket): tenants with only dead letters, erasure markers or a stale
    claim cost no STS AssumeRole at each process start, whose TVM credentials could be refused."""
    from memory.pipeline.background import SummaryPipeline
    from memory.pipeline.summarizer import Summarizer
    from memory.stores.tvm import TokenVendingMachine

    admin = S3Outbox(lambda _t: s3, BUCKET, lister=s3)
    admin.put(entry("c1"))
    admin.dead_letter(entry("c2", tenant="globex"), "AccessDenied")
    admin.add_erasure(ErasureMarker(tenant_id="initech", user_id="bob"))
    assert admin.claim(entry("c3", tenant="umbrella").entry_id, "umbrella") is not None
    sts = make_client("sts", region="us-east-1")
    assumed: list[str] = []
    sts.meta.events.register("provide-client-params.sts.AssumeRole",
                             lambda params, **_: assumed.append(params["Tags"][0]["Value"]))
    tvm = TokenVendingMachine("arn:aws:iam::123456789012:role/memory-tenant", "us-east-1", sts_client_factory=lambda: sts)
    outbox = S3Outbox(lambda t: s3 if t is None else tvm.client_for(t, "s3"), BUCKET, lister=s3)
    assert outbox.tenants() == ["acme", "globex", "initech", "umbrella"]

    pipeline = SummaryPipeline(fake_store, outbox, Summarizer())
    try:
        assert pipeline.replay_pending() == 1 and pipeline.wait(30)
    finally:
        pipeline.shutdown(wait=True)
    assert assumed == ["acme"] and len(fake_store.memories) == 1  # the summary reused its credentials
    assert [d.entry.conversation_id for d in admin.dead_letters("globex")] == ["c2"]  # left alone


def test_s3_a_missing_bucket_is_an_error_not_a_lost_race(s3) -> None:
    """A conditional write answered 404 because the bucket is gone must not read as "another
    process holds the claim": the entry would wait silently instead of the error being seen."""
    outbox = S3Outbox(lambda _tenant: s3, "outbox-bucket-that-does-not-exist", lister=s3)
    with pytest.raises(MemoryLibraryError):
        outbox.claim("sum-" + "ab" * 32, "acme")


def answer_403_for_missing_keys(client: Any) -> None:
    """Make ``client`` answer like S3 answers a caller without ``s3:ListBucket`` on the bucket:
    a GetObject of a missing key, or a write conditioned (``If-Match``) on one, is 403
    AccessDenied, not 404 (S3 does not tell who may not list whether a key exists). The TVM
    role's ListBucket holds only under an ``s3:prefix`` condition, which such requests lack."""

    def missing(bucket: str, key: str) -> bool:
        try:
            client.head_object(Bucket=bucket, Key=key)
            return False
        except ClientError:
            return True

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["api_params"] = dict(params)  # before-call sees the serialised request only

    def refuse(model: Any, context: dict[str, Any], **_: Any) -> Any:
        params = context["api_params"]
        conditioned = model.name == "GetObject" or "IfMatch" in params
        if conditioned and missing(params["Bucket"], params["Key"]):
            error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"},
                     "ResponseMetadata": {"HTTPStatusCode": 403}}
            return type("Refused", (), {"status_code": 403})(), error
        return None

    for operation in ("GetObject", "PutObject", "DeleteObject"):
        client.meta.events.register(f"before-parameter-build.s3.{operation}", remember)
        client.meta.events.register(f"before-call.s3.{operation}", refuse)


def test_s3_a_key_gone_reads_as_gone_when_s3_answers_403_for_it(s3) -> None:
    """A tenant session reads an entry another process removed, releases a claim another took
    over and removed, compares-and-sets an entry deleted meanwhile: each is "gone" (None, a lost
    race), as with a 404, never AccessDenied; a key that exists but is refused still is."""
    answer_403_for_missing_keys(s3)
    outbox = S3Outbox(lambda _tenant: s3, BUCKET, lister=s3)
    e = entry()
    outbox.put(e)
    claim = outbox.claim(e.entry_id, "acme")
    assert claim is not None
    s3.delete_object(Bucket=BUCKET, Key=outbox._key("acme", "claims", e.entry_id))  # taken over, released
    outbox.release(claim)  # a lost lease is left alone
    assert outbox.claim(e.entry_id, "acme") is not None
    outbox.remove(e.entry_id, "acme")  # stored and removed by another process
    assert outbox.get(e.entry_id, "acme") is None and outbox.swap(e, None) is False
    assert outbox.dead_letters("acme") == [] and outbox.pending("acme") == []


def test_s3_a_refused_claim_is_access_denied_not_another_processs_claim(s3) -> None:
    """A claim's create (``If-None-Match: *``) is conditioned on the key being absent, so a 403 to
    it is a refusal (e.g. an SSE-KMS outbox whose key the tenant role may not use for
    GenerateDataKey, while listing and reading older SSE-S3 entries still work), never the "gone"
    of a key another process removed: read as a lost race, every entry looked claimed by another
    process, was re-checked every claim lease and never stored, dead-lettered or reported."""
    answer_403_for_missing_keys(s3)  # a tenant session: reads of missing keys are 403 too
    outbox = S3Outbox(lambda _tenant: s3, BUCKET, lister=s3)
    e = entry()
    outbox.put(e)

    def refuse_claims(params: dict[str, Any], **_: Any) -> None:
        if "/claims/" in params["Key"]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized: kms:GenerateDataKey"},
                               "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")

    s3.meta.events.register("before-parameter-build.s3.PutObject", refuse_claims)
    with pytest.raises(AccessDenied):
        outbox.claim(e.entry_id, "acme")
    assert outbox.get(e.entry_id, "acme") == e  # left pending for a replay once access is fixed


def test_s3_a_refused_key_that_exists_is_still_access_denied(s3) -> None:
    outbox = S3Outbox(lambda _tenant: s3, BUCKET, lister=s3)
    e = entry()
    outbox.put(e)

    def refuse(**_: Any) -> Any:
        error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return type("Refused", (), {"status_code": 403})(), error

    s3.meta.events.register("before-call.s3.GetObject", refuse)
    with pytest.raises(AccessDenied):
        outbox.get(e.entry_id, "acme")



class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.data


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("KMS.DisabledException", "ConfigurationError"),
        ("KMS.KMSInvalidStateException", "ConfigurationError"),
        ("KMS.NotFoundException", "ConfigurationError"),
        ("KMS.AccessDeniedException", "AccessDenied"),
    ],
)
def test_s3_a_kms_key_it_cannot_use_is_a_key_fault_not_invalid_input(s3, code: str, error: str) -> None:
    """S3 answers SSE-KMS faults 400 with the KMS error as ``KMS.<code>`` (parsed here by
    botocore's own S3 parser from the XML body); on main they were ``ValidationError``."""
    from botocore.awsrequest import AWSResponse

    outbox = S3Outbox(lambda _t: s3, BUCKET)
    e = entry()
    outbox.put(e)
    body = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>"
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd is disabled.</Message></Error>").encode()

    def refuse(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 400, {"Content-Type": "application/xml"}, _Body(body))

    s3.meta.events.register("before-send.s3.GetObject", refuse, unique_id="kms-refusal")
    try:
        with pytest.raises(MemoryLibraryError) as info:
            outbox.get(e.entry_id, "acme")
    finally:
        s3.meta.events.unregister("before-send.s3.GetObject", unique_id="kms-refusal")
    assert type(info.value).__name__ == error and code in str(info.value)
