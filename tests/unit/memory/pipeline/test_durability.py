"""Nothing lost, nothing resurrected, bounded busy time: the pipeline over both outbox backends.

Claims (two replayers store a conversation once), erasure markers (no store path brings an
erased conversation back, other users untouched), dead letters (the busy task ends), and
background checkpoints (coalesced, superseded by the closed entry).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
from moto import mock_aws
from strands import Agent

from memory.aws import make_client
from memory.errors import AccessDenied, BackendUnavailable
from memory.keys import new_conversation_marker
from memory.pipeline import background
from memory.pipeline.background import RetryPolicy, SummaryPipeline
from memory.pipeline.erasure import erase
from memory.pipeline.outbox import ErasureMarker, Outbox, OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.outbox_s3 import S3Outbox
from memory.pipeline.summarizer import Summarizer
from memory.plugin.plugin import MemoryPlugin
from tests.support.busy import BusyTasks, GatedSummarizer, wait_until
from memory.types import Scope
from tests.support.scripted_model import EchoModel, ScriptedModel

FAST = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002, sweep_base_delay=0.01, sweep_max_delay=0.02)


@pytest.fixture(params=["local", "s3"])
def make_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of outboxes sharing one backing store (a directory, or a moto S3 bucket)."""
    if request.param == "local":
        yield lambda: LocalOutbox(tmp_path / "outbox")
        return
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket="durability-outbox")
        yield lambda: S3Outbox(lambda _tenant: client, "durability-outbox", lister=client)


@pytest.fixture
def pipelines(fake_store) -> Iterator[list[SummaryPipeline]]:
    made: list[SummaryPipeline] = []
    yield made
    for pipeline in made:
        pipeline.shutdown(wait=True)


def new_pipeline(made: list[SummaryPipeline], store: Any, outbox: Outbox, **kwargs: Any) -> SummaryPipeline:
    kwargs.setdefault("retry", FAST)
    pipeline = SummaryPipeline(store, outbox, kwargs.pop("summarizer", Summarizer()), **kwargs)
    made.append(pipeline)
    return pipeline


def swept_pipeline(
    made: list[SummaryPipeline], store: Any, outbox: Outbox, retry: RetryPolicy
) -> tuple[SummaryPipeline, BusyTasks]:
    """A pipeline whose sweeper runs and whose busy tasks a ``BusyTasks`` counts."""
    busy = BusyTasks()
    pipeline = new_pipeline(made, store, outbox, retry=retry, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.start_sweeper()
    return pipeline, busy


def fail_slowly(store: Any, monkeypatch: pytest.MonkeyPatch, reason: str, seconds: float) -> None:
    """Every store attempt fails (``BackendUnavailable(reason)``) after ``seconds``: a store or
    model call timing out."""
    store.fail_store = BackendUnavailable(reason)
    store_units = store.store_units

    def slow_failure(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return store_units(*args, **kwargs)

    monkeypatch.setattr(store, "store_units", slow_failure)


def entry(user: str = "alice", conversation: str = "c1", text: str | None = None, **kwargs: Any) -> OutboxEntry:
    return OutboxEntry(
        tenant_id="acme", user_id=user, agent_name="orchestrator", conversation_id=conversation,
        transcript=[{"role": "user", "text": text or f"The secret of {user} is {conversation}."}],
        opened=kwargs.pop("opened", new_conversation_marker()), **kwargs,
    )


# -- claims: exactly once, whichever process replays ------------------------------------------


def test_two_replayers_racing_store_a_conversation_once(fake_store, make_outbox, pipelines) -> None:
    dead = make_outbox()
    left = [entry("alice", "c1"), entry("bob", "c2", open=True)]  # closed, and a dead process's checkpoint
    for e in left:
        dead.put(e)
    racers = [new_pipeline(pipelines, fake_store, make_outbox()) for _ in range(2)]
    barrier = threading.Barrier(2)

    def replay(pipeline: SummaryPipeline) -> None:
        barrier.wait()
        pipeline.replay_pending()

    threads = [threading.Thread(target=replay, args=(p,)) for p in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(30) for p in racers)
    keys = [call["key"] for call in fake_store.store_calls]
    assert sorted(keys) == sorted(e.key for e in left)  # each stored exactly once
    assert make_outbox().pending() == []


def test_a_replayer_leaves_an_entry_another_process_has_claimed(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    e = entry()
    outbox.put(e)
    held = outbox.claim(e.entry_id, "acme")  # another process is summarizing it
    busy = BusyTasks()
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), on_task_start=busy.start, on_task_end=busy.end)
    assert pipeline.replay_pending() == 1 and pipeline.wait(30)
    assert fake_store.store_calls == [] and pipeline.metrics["claimed_elsewhere"] == 1 and busy.open == set()
    outbox.release(held)


def test_an_entry_whose_claimant_died_is_stored_by_the_process_that_found_it_claimed(
    fake_store, make_outbox, pipelines
) -> None:
    # Process A claimed the entry to summarize it and was killed (SIGKILL: its S3 lease stays
    # until it expires, a local flock is dropped by the kernel). Process B started meanwhile and
    # found it claimed: once the claim can be taken, B stores it (no later start is needed).
    outbox = make_outbox()
    e = entry()
    outbox.put(e)
    # A's lease outlives B's start-up replay also on a loaded machine (at 0.3 s it once expired
    # first under a full suite, and B stored the entry at once)
    held = outbox.claim(e.entry_id, "acme", ttl_seconds=2.0)
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), claim_ttl_seconds=0.3)
    pipeline.start_sweeper()
    assert pipeline.replay_pending() == 1 and pipeline.wait(30)
    assert fake_store.store_calls == [] and pipeline.metrics["claimed_elsewhere"] == 1
    if isinstance(outbox, LocalOutbox):
        outbox.release(held)  # A's process is gone
    assert wait_until(lambda: [c["key"] for c in fake_store.store_calls] == [e.key])
    assert wait_until(lambda: outbox.pending() == [])


def test_a_dead_processs_checkpoint_too_young_to_adopt_at_start_up_is_adopted_once_old_enough(
    fake_store, make_outbox, pipelines
) -> None:
    # Process A is killed mid-conversation; the user's next session starts process B at once
    # (on AgentCore, every session is a process). A's last checkpoint is younger than
    # orphan_after (it could be a live process's), so B's start-up replay leaves it; B lives on
    # and stores it once it is old enough, without waiting for some later process start.
    outbox = make_outbox()
    e = entry(open=True, text="My kite is called Zephyr.")
    outbox.put(e)
    # 3 s, not 0.5: B's start-up (a moto S3 client) once took longer on a loaded machine, and
    # its replay found the checkpoint already old enough
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), orphan_after_seconds=3)
    pipeline.start_sweeper()
    assert pipeline.replay_pending() == 0
    assert wait_until(lambda: [c["key"] for c in fake_store.store_calls] == [e.key])
    assert wait_until(lambda: outbox.pending() == [])


def test_a_young_checkpoint_is_adopted_once_unchanged_that_long_and_never_while_its_process_writes(
    fake_store, make_outbox, pipelines
) -> None:
    outbox = make_outbox()
    assert outbox.pending() == []  # the backend is warm: the replay below runs well within 2 s of `started`
    started = datetime.now(timezone.utc)
    alice = entry("alice", open=True)
    bob = entry("bob", open=True, created_at=(started - timedelta(seconds=1)).isoformat())
    for e in (alice, bob):
        outbox.put(e)
    bob_last = dataclasses.replace(bob, transcript=[{"role": "user", "text": "My kite is called Zephyr."}],
                                   created_at=started.isoformat())  # written just before B started...
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), orphan_after_seconds=3)
    pipeline.start_sweeper()
    assert pipeline.replay_pending() == 0
    outbox.put(bob_last)  # ...landing after B listed: B waits until it is as old, then adopts it
    outbox.put(dataclasses.replace(alice, created_at=datetime.now(timezone.utc).isoformat()))  # alive
    assert wait_until(lambda: [c["key"] for c in fake_store.store_calls] == [bob.key])
    assert "Zephyr" in fake_store.memories[bob.key].content
    time.sleep(1)  # alice's first checkpoint was as old by now, but her process lives on
    assert [c["key"] for c in fake_store.store_calls] == [bob.key]
    assert [e.entry_id for e in outbox.pending()] == [alice.entry_id]


def test_a_recent_open_entry_belongs_to_a_live_process_and_is_not_adopted(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    live = entry(open=True)
    stale = entry("bob", open=True, created_at=(datetime.now(timezone.utc) - timedelta(hours=1)).isoformat())
    outbox.put(live)
    outbox.put(stale)
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), orphan_after_seconds=900)
    assert pipeline.replay_pending() == 1 and pipeline.wait(30)
    assert [c["key"] for c in fake_store.store_calls] == [stale.key]
    assert [e.entry_id for e in outbox.pending()] == [live.entry_id]



def test_an_entry_with_a_malformed_time_does_not_stop_the_replay(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    outbox.put(entry("alice", open=True, created_at="yesterday"))  # valid JSON, not a time
    outbox.put(entry("carol"))
    pipeline = new_pipeline(pipelines, fake_store, make_outbox())
    assert pipeline.replay_pending() == 1 and pipeline.wait(30)  # the start-up replay does not raise
    assert [c["scope"].user_id for c in fake_store.store_calls] == ["carol"]


def test_an_adopted_checkpoint_whose_process_lives_on_does_not_swallow_its_end(fake_store, make_outbox, pipelines) -> None:
    live = new_pipeline(pipelines, fake_store, make_outbox())  # e.g. in a turn longer than orphan_after
    first = entry(open=True)
    live.checkpoint(first)
    assert live.flush(30)
    gated = GatedSummarizer()
    replayer = new_pipeline(pipelines, fake_store, make_outbox(), summarizer=gated, orphan_after_seconds=0)
    assert replayer.replay_pending() == 1 and gated.started.wait(30)  # adopted, now summarizing
    ended = dataclasses.replace(first, open=False, created_at=datetime.now(timezone.utc).isoformat(),
                                transcript=[*first.transcript, {"role": "user", "text": "My boat is Wave."}])
    assert live.end_conversation(ended) is not None and live.wait(30)  # claimed by the replayer
    gated.gate.set()
    assert replayer.wait(30)
    assert "Wave" in _stored_text(fake_store) or make_outbox().pending() != []  # stored, or still pending

def test_a_checkpoint_written_just_before_the_adopters_delete_is_summarized_not_deleted(fake_store, pipelines) -> None:
    """The adopter's delete of a stored checkpoint is conditional on the version it read: a live
    process's newer checkpoint landing between that read and the delete (S3 under moto, the
    write made just before the DeleteObject request) is kept and summarized."""
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket="durability-outbox")
        outbox = S3Outbox(lambda _tenant: client, "durability-outbox", lister=client)
        first = entry(open=True, created_at=(datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat())
        outbox.put(first)
        newer = dataclasses.replace(first, created_at=datetime.now(timezone.utc).isoformat(),
                                    transcript=[*first.transcript, {"role": "user", "text": "My boat is Wave."}])
        landed: list[str] = []

        def live_process_writes_first(params: dict[str, Any], **_: Any) -> None:
            if "/pending/" in params["Key"] and not landed:
                landed.append(params["Key"])
                S3Outbox(lambda _tenant: client, "durability-outbox").put(newer)

        client.meta.events.register("before-parameter-build.s3.DeleteObject", live_process_writes_first)
        replayer = new_pipeline(pipelines, fake_store, outbox, orphan_after_seconds=60)
        assert replayer.replay_pending() == 1 and replayer.wait(30)
        assert landed and "Wave" in _stored_text(fake_store)
        assert outbox.pending() == []  # the newer version was stored, then removed


@pytest.mark.parametrize("newer_open", [False, True])
def test_a_newer_version_written_just_before_a_stored_entrys_delete_is_kept(
    fake_store, pipelines, monkeypatch, newer_open
) -> None:
    """A closed entry (not adopted) is removed once stored only while it is the version read:
    another process's newer version of the conversation (it went on there: another end, or a
    checkpoint) landing before the DeleteObject is summarized (an end), or left pending to
    its process (a checkpoint), never deleted unread. Either way the task stored a summary: its
    outcome says so (it said GONE beside a newer checkpoint, and a store did not make the
    pipeline's pending summaries busy again after a stretch of failures)."""
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket="durability-outbox")
        outbox = S3Outbox(lambda _tenant: client, "durability-outbox", lister=client)
        first = entry()
        outbox.put(first)
        newer = dataclasses.replace(first, open=newer_open, created_at=datetime.now(timezone.utc).isoformat(),
                                    transcript=[*first.transcript, {"role": "user", "text": "My boat is Wave."}])
        landed: list[str] = []

        def other_process_writes_first(params: dict[str, Any], **_: Any) -> None:
            if "/pending/" in params["Key"] and not landed:
                landed.append(params["Key"])
                S3Outbox(lambda _tenant: client, "durability-outbox").put(newer)

        client.meta.events.register("before-parameter-build.s3.DeleteObject", other_process_writes_first)
        replayer = new_pipeline(pipelines, fake_store, outbox)
        outcomes: list[Any] = []
        run = replayer._run
        monkeypatch.setattr(replayer, "_run", lambda ref: outcomes.append(run(ref)) or outcomes[-1])
        assert replayer.replay_pending() == 1 and replayer.wait(30)
        assert landed and [outcome.value for outcome in outcomes] == ["stored"]
        if newer_open:
            assert "Wave" not in _stored_text(fake_store) and outbox.pending() == [newer]
        else:
            assert "Wave" in _stored_text(fake_store) and outbox.pending() == []


def test_counting_a_failed_attempt_does_not_write_back_an_entry_deleted_meanwhile(fake_store, pipelines) -> None:
    """The attempt counter is a conditional write: an entry deleted (by ``forget``) between the
    counter's read and its write stays deleted (S3 under moto; the delete made just before the
    counter's PutObject request)."""
    fake_store.fail_store = BackendUnavailable("outage")
    with mock_aws():
        client = make_client("s3", region="us-east-1")
        client.create_bucket(Bucket="durability-outbox")
        outbox = S3Outbox(lambda _tenant: client, "durability-outbox", lister=client)
        e = entry()
        outbox.put(e)
        key = f"outbox/acme/pending/{e.entry_id}.json"
        deleted: list[str] = []

        def forget_lands_first(params: dict[str, Any], **_: Any) -> None:
            if params["Key"] == key and not deleted:
                deleted.append(key)
                client.delete_object(Bucket="durability-outbox", Key=key)

        client.meta.events.register("before-parameter-build.s3.PutObject", forget_lands_first)
        pipeline = new_pipeline(pipelines, fake_store, outbox)  # no sweeper: one round of attempts
        pipeline.replay_pending()
        assert wait_until(lambda: pipeline.metrics["exhausted"] == 1)
        assert deleted and len(fake_store.store_calls) == FAST.max_attempts
        assert outbox.get(e.entry_id, "acme") is None and outbox.pending() == []


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_counting_a_failed_attempt_reads_the_entry_once(fake_store, pipelines, tmp_path, monkeypatch, backend) -> None:
    """The counter's compare-and-set reads the entry itself (S3: GetObject for its ETag): it read
    it a second time first. Reads of the entry while one conversation is stored after one failed
    attempt, minus those while one is stored at once, are the counter's."""
    reads: list[str] = []
    with mock_aws():
        if backend == "s3":
            client = make_client("s3", region="us-east-1")
            client.create_bucket(Bucket="durability-outbox")
            for operation in ("GetObject", "HeadObject"):
                client.meta.events.register(f"before-parameter-build.s3.{operation}",
                                            lambda params, **_: reads.append(params["Key"]))
            outbox: Outbox = S3Outbox(lambda _tenant: client, "durability-outbox", lister=client)
        else:
            outbox = LocalOutbox(tmp_path / "outbox")
            read = LocalOutbox._read
            monkeypatch.setattr(LocalOutbox, "_read", staticmethod(lambda path: reads.append(str(path)) or read(path)))
        store_units = fake_store.store_units
        failures = [BackendUnavailable("outage")]

        def fails_once(*args: Any, **kwargs: Any) -> Any:
            if failures:
                raise failures.pop()
            return store_units(*args, **kwargs)

        pipeline = new_pipeline(pipelines, fake_store, outbox)
        counts = []
        for conversation in ("at-once", "after-one-failure"):
            failures[:] = [] if conversation == "at-once" else [BackendUnavailable("outage")]
            e = entry(conversation=conversation)
            monkeypatch.setattr(fake_store, "store_units", fails_once)
            pipeline.end_conversation(e)
            assert pipeline.wait(30) and outbox.pending() == []
            counts.append(sum(key.endswith(f"{e.entry_id}.json") and "/dead/" not in key and "/claims/" not in key
                              for key in reads))
            reads.clear()
    assert pipeline.metrics["failed_attempts"] == 1 and len(fake_store.memories) == 2
    assert counts[1] - counts[0] == 1


# -- erasure: nothing comes back ---------------------------------------------------------------


def test_the_erased_conversations_remembered_are_bounded_and_an_evicted_one_is_still_refused(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    monkeypatch.setattr(background, "ERASED_REMEMBERED", 2, raising=False)
    outbox = make_outbox()
    pipeline = new_pipeline(pipelines, fake_store, outbox)
    conversations = [entry("alice", f"c{i}") for i in range(3)]  # opened before the erasure
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    for conversation in conversations:
        assert pipeline.end_conversation(conversation) is None
    assert [pipeline.is_erased("acme", c.entry_id) for c in conversations] == [False, True, True]
    assert pipeline.end_conversation(conversations[0]) is None  # the marker still covers it
    assert pipeline.is_erased("acme", conversations[0].entry_id)
    assert outbox.pending() == [] and fake_store.store_calls == []


def test_replay_after_forget_stores_nothing_of_the_erased_user(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    alice, bob = entry("alice"), entry("bob")
    for e in (alice, bob):
        outbox.put(e)
    result = erase(outbox, fake_store, tenant_id="acme", user_id="alice")
    assert result.outbox_entries == 1
    outbox.put(alice)  # e.g. a live process's late checkpoint lands after the forget
    pipeline = new_pipeline(pipelines, fake_store, make_outbox())
    pipeline.replay_pending()
    assert pipeline.wait(30)
    assert [c["scope"].user_id for c in fake_store.store_calls] == ["bob"]  # bob untouched
    assert outbox.pending() == [] and pipeline.metrics["erased_dropped"] == 1


def test_ending_a_conversation_after_forget_writes_and_stores_nothing(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    pipeline = new_pipeline(pipelines, fake_store, outbox)
    alice = entry("alice")
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    assert pipeline.end_conversation(alice) is None and pipeline.is_erased(alice.tenant_id, alice.entry_id)
    assert pipeline.end_conversation(entry("bob")) is not None and pipeline.wait(30)
    assert [c["scope"].user_id for c in fake_store.store_calls] == ["bob"] and outbox.pending() == []
    later = entry("alice", "c2")  # a conversation that starts after the erasure is kept
    assert pipeline.end_conversation(later) is not None and pipeline.wait(30)
    assert [c["scope"].user_id for c in fake_store.store_calls] == ["bob", "alice"]


def test_a_forget_racing_a_store_deletes_what_was_just_stored(fake_store, make_outbox, pipelines) -> None:
    gated = GatedSummarizer()
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), summarizer=gated)
    pipeline.end_conversation(entry("alice"))
    assert gated.started.wait(30)  # checked the markers (none yet), now summarizing
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    gated.gate.set()
    assert pipeline.wait(30)
    assert len(fake_store.store_calls) == 1 and fake_store.memories == {}  # stored, then deleted again
    assert pipeline.metrics["erased_after_store"] == 1 and make_outbox().pending() == []


def test_a_forget_racing_a_store_that_failed_after_putting_units_deletes_them(
    fake_store, make_outbox, pipelines
) -> None:
    """``store_units`` puts the units, then looks up and deletes stale keys: when that fails
    (throttled after botocore's retries, or denied), the units are in the index although the store
    raised. A forget that ran meanwhile had nothing to delete yet, and removed the outbox entry,
    so no replay comes back to it: the failure path must undo the store like the success path."""
    put_units = fake_store.store_units

    def put_then_fail(*args: Any, **kwargs: Any) -> Any:
        put_units(*args, **kwargs)
        raise BackendUnavailable("s3vectors get_vectors memory-acme: TooManyRequestsException")

    fake_store.store_units = put_then_fail
    gated = GatedSummarizer()
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), summarizer=gated)
    pipeline.start_sweeper()
    pipeline.end_conversation(entry("alice", text="My PIN is 4321."))
    assert gated.started.wait(30)  # checked the markers (none yet), now summarizing
    assert erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice").memories == 0
    gated.gate.set()
    assert wait_until(lambda: pipeline.waiting == 0) and pipeline.wait(30)
    assert len(fake_store.store_calls) >= 1
    assert fake_store.memories == {}  # nothing of alice's is left in the index
    assert make_outbox().pending() == [] and make_outbox().dead_letters() == []


def test_undoing_a_store_that_raced_forget_keeps_a_later_conversation_of_the_same_session(
    s3vectors_client, tmp_path, pipelines
) -> None:
    """A conversation id is the AgentCore session id, and a session goes on after an end: a
    conversation opened after ``forget --conversation`` is not erased (its marker covers those
    that started before it). The store that raced the forget is undone, and only it: the later
    conversation of the same session, stored meanwhile, keeps its memories (S3 Vectors under
    moto; undoing by conversation id deleted every conversation held under it)."""
    from memory.embedders.local import LocalEmbedder
    from memory.pipeline.units import store_conversation
    from memory.stores.single_tenant import SingleTenantStore
    from tests.unit.memory.conftest import BUCKET

    store = SingleTenantStore.for_s3vectors(client=s3vectors_client, bucket=BUCKET, index_name="memory-acme",
                                            embedder=LocalEmbedder(), tenant_id="acme")
    outbox = LocalOutbox(tmp_path / "outbox")
    gated = GatedSummarizer()
    pipeline = new_pipeline(pipelines, store, outbox, summarizer=gated)
    pipeline.end_conversation(entry("alice", "session-1", text="My PIN is 4321."))
    assert gated.started.wait(30)  # checked the markers (none yet), now summarizing
    erase(outbox, store, tenant_id="acme", user_id="alice", conversation_id="session-1")
    time.sleep(0.01)
    later = entry("alice", "session-1", text="My train to Porto leaves at nine tomorrow.")  # opened after forget
    store_conversation(store, later, "The user's train to Porto leaves at nine tomorrow.")
    gated.gate.set()
    assert pipeline.wait(30)
    assert pipeline.metrics["erased_after_store"] == 1
    kept = store.list(Scope("alice", "acme"))
    assert kept and {m.opened for m in kept} == {later.opened}
    assert not any("4321" in m.content for m in kept)


def test_a_live_conversation_erased_mid_way_is_dropped_by_the_plugin(fake_store, make_outbox, pipelines) -> None:
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), erasure_refresh_seconds=0.0)
    plugins = {}
    agents = {}
    for user in ("alice", "bob"):
        plugins[user] = MemoryPlugin(fake_store, pipeline=pipeline)
        agents[user] = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugins[user]], callback_handler=None)

    def say(user: str, text: str, end: bool = False) -> None:
        state = {"tenant_context": "acme", "user_id": user, "conversation_id": f"s-{user}", "end_session": end}
        agents[user](text, invocation_state=state)

    say("alice", "My PIN is 4321.")
    say("bob", "My PIN is 9999.")
    assert pipeline.flush(30)
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    say("alice", "And my password is hunter2.")  # its checkpoint finds the marker: dropped
    assert pipeline.flush(30)
    say("alice", "Bye.", end=True)
    say("bob", "Bye.", end=True)
    assert pipeline.wait(30)
    assert plugins["alice"].transcript == [] and plugins["alice"].metrics["erased"] >= 1
    stored = [c["content"] for c in fake_store.store_calls]
    assert len(stored) == 1 and "9999" in stored[0] and not any("4321" in s or "hunter2" in s for s in stored)
    assert make_outbox().pending() == []



def _alice_with_a_pin(
    made: list[SummaryPipeline], store: Any, outbox: Outbox, **kwargs: Any
) -> tuple[SummaryPipeline, Agent]:
    """A pipeline, and an orchestrator whose answers repeat the memories injected into its prompt
    (as a model may), for alice, whose past conversation left her PIN in memory."""
    store.add(Scope(user_id="alice", tenant_id="acme", agent_name="orchestrator"), "My PIN is 4321.")
    pipeline = new_pipeline(made, store, outbox, **kwargs)
    plugin = MemoryPlugin(store, pipeline=pipeline)
    agent = Agent(model=EchoModel(), name="orchestrator", system_prompt="Known: {memory_context}",
                  plugins=[plugin], callback_handler=None)
    return pipeline, agent


def _alice_turn(agent: Agent, text: str, end: bool = False) -> str:
    state = {"tenant_context": "acme", "user_id": "alice", "conversation_id": "s-alice", "end_session": end}
    return str(agent(text, invocation_state=state))


def _stored_text(store: Any) -> str:
    return "\n".join(unit.content for call in store.store_calls for unit in call["units"])


def test_a_forget_right_after_the_first_turns_retrieval_stores_nothing_it_injected(
    fake_store, make_outbox, pipelines
) -> None:
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox())
    retrieve = fake_store.retrieve

    def retrieve_then_forget(*args: Any, **kwargs: Any) -> Any:
        found = retrieve(*args, **kwargs)
        erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")  # lands just after the read
        return found

    fake_store.retrieve = retrieve_then_forget
    assert "4321" in _alice_turn(agent, "My PIN is needed now.", end=True)  # read before the forget
    assert pipeline.wait(30)
    assert "4321" not in _stored_text(fake_store) and make_outbox().pending() == []


def test_a_conversation_opened_while_forget_deletes_stores_nothing_it_injected(
    fake_store, make_outbox, pipelines
) -> None:
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox())
    forgetting = make_outbox()
    add_erasure = forgetting.add_erasure
    answers = []

    def marker_then_first_turn(marker: Any) -> None:
        add_erasure(marker)
        if not answers:  # the marker is durable, the memories not deleted yet
            answers.append(_alice_turn(agent, "My PIN is needed now."))

    forgetting.add_erasure = marker_then_first_turn  # type: ignore[method-assign]
    erase(forgetting, fake_store, tenant_id="acme", user_id="alice")
    assert "4321" in answers[0] and fake_store.memories == {}
    _alice_turn(agent, "Bye.", end=True)
    assert pipeline.wait(30)
    assert "4321" not in _stored_text(fake_store) and make_outbox().pending() == []


def test_a_live_conversation_found_erased_no_longer_injects_the_erased_memories(
    fake_store, make_outbox, pipelines
) -> None:
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox(), erasure_refresh_seconds=0.0)
    assert "4321" in _alice_turn(agent, "My PIN is needed now.")  # injected on the first turn
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    _alice_turn(agent, "I am still here.")  # its checkpoint finds the marker
    assert pipeline.flush(30)
    assert "4321" not in _alice_turn(agent, "Anything else?")  # the session goes on without them


def test_a_live_conversation_learns_of_its_erasure_at_its_next_turn_whatever_was_erased_meanwhile(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    """The pipeline remembered only the latest ``ERASED_REMEMBERED`` (4,096) live conversations
    it had found erased: past that many other erasures between two turns, the plugin learned of
    its own one turn late, and that turn still showed the erased memories. (2 here.)"""
    monkeypatch.setattr(background, "ERASED_REMEMBERED", 2, raising=False)
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox(), erasure_refresh_seconds=0.0)
    assert "4321" in _alice_turn(agent, "My PIN is needed now.")
    assert pipeline.flush(30)  # its checkpoint is written before the erasure
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    _alice_turn(agent, "I am still here.")  # its checkpoint finds the marker
    assert pipeline.flush(30)
    others = [entry(f"user-{n}", open=True) for n in range(2)]
    for other in others:  # two other live conversations found erased before alice's next turn
        erase(make_outbox(), None, tenant_id="acme", user_id=other.user_id)
        pipeline.checkpoint(other)
        assert pipeline.flush(30)
    assert pipeline.metrics["erased_dropped"] == 3
    assert "4321" not in _alice_turn(agent, "Anything else?")  # on main: shown once more


def test_a_specialist_learns_of_its_conversations_erasure_at_its_next_turn_whatever_was_read_meanwhile(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    """A read-only plugin (a specialist: no checkpoints of its own) asked whether the markers the
    pipeline keeps, for at most 4,096 users (cleared when full), cover its conversation: once
    the writer had read as many other users' markers between two turns, it learned of the
    erasure one turn late (or later), still showing the erased memories. (1 user here.)"""
    monkeypatch.setattr(background, "_MARKER_CACHE_SIZE", 1, raising=False)
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox(), erasure_refresh_seconds=0.0)
    reader = MemoryPlugin(fake_store, pipeline=pipeline, summarize=False, read_agent_name="orchestrator")
    specialist = Agent(model=EchoModel(), name="researcher", system_prompt="Known: {memory_context}",
                       plugins=[reader], callback_handler=None)
    assert "4321" in _alice_turn(agent, "My PIN is needed now.")
    assert "4321" in _alice_turn(specialist, "Look into my PIN.")
    assert pipeline.flush(30)  # the orchestrator's checkpoint is written before the erasure
    erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    _alice_turn(agent, "I am still here.")  # the orchestrator's checkpoint reads alice's marker
    assert pipeline.flush(30)
    pipeline.checkpoint(entry("bob", open=True))  # then bob's markers are read (the cache is full)
    assert pipeline.flush(30)
    assert "4321" not in _alice_turn(specialist, "Anything else?")  # on main: shown once more


def test_a_marker_read_while_the_first_turns_memories_are_read_keeps_them_out_of_that_turn(
    fake_store, make_outbox, pipelines
) -> None:
    """The conversation is watched from its start, so a marker the pipeline reads while its first
    turn's memories are read (here: another conversation of alice's ending meanwhile) flags it;
    the flag was asked only at later turns, so that first turn still showed the erased memories."""
    pipeline, agent = _alice_with_a_pin(pipelines, fake_store, make_outbox())
    retrieve, other = fake_store.retrieve, entry("alice", "c-other")

    def retrieve_then_forget(*args: Any, **kwargs: Any) -> Any:
        found = retrieve(*args, **kwargs)
        erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")  # lands just after the read
        assert pipeline.end_conversation(other) is None  # the pipeline reads its marker
        return found

    fake_store.retrieve = retrieve_then_forget
    assert "4321" not in _alice_turn(agent, "My PIN is needed now.", end=True)  # on main: shown
    assert pipeline.wait(30)
    assert "4321" not in _stored_text(fake_store) and make_outbox().pending() == []


def test_forget_sweeps_the_outbox_again_after_writers_have_read_its_marker(fake_store, make_outbox, pipelines) -> None:
    """A running app trusts the markers it read for ``erasure_refresh_seconds``: a turn answered
    right after ``forget`` deleted alice's open checkpoint gets it written again. ``forget``
    (``settle_seconds``) sweeps once more after that, so it returns with none of hers left."""
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), erasure_refresh_seconds=60.0)
    live = entry("alice", "c1", open=True)
    bob = entry("bob", "c2", open=True)
    for e in (live, bob):
        pipeline.checkpoint(e)
    assert pipeline.flush(30)  # markers read (none yet) and trusted for a minute

    def next_turn_meanwhile(seconds: float) -> None:
        pipeline.checkpoint(dataclasses.replace(live, transcript=[*live.transcript, {"role": "user", "text": "again"}]))
        assert pipeline.flush(30)
        assert any(e.user_id == "alice" for e in make_outbox().pending())  # written back: the race is real

    result = erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice", settle_seconds=7.0,
                   sleep=next_turn_meanwhile)
    assert result.outbox_entries == 2  # the checkpoint, and the same one written back
    assert [e.user_id for e in make_outbox().pending()] == ["bob"]



class SlowErasureListing:
    """The pipeline's outbox with its first erasure listing held open until ``go`` is set: the
    listing answers what the outbox held when it started (an S3 LIST retried under throttling)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox_ = outbox
        self.listing, self.go = threading.Event(), threading.Event()

    def erasures(self, tenant_id: str | None, user_id: str | None = None) -> list[Any]:
        found = self.outbox_.erasures(tenant_id, user_id)
        if not self.listing.is_set():
            self.listing.set()
            assert self.go.wait(30)
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox_, name)


class FakeMonotonic:
    """Stands in for the ``time`` module of ``memory.pipeline.background`` (monotonic only moves when told)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleep = time.sleep

    def monotonic(self) -> float:
        return self.now


def test_a_slow_erasure_listing_never_replaces_a_newer_one(fake_store, make_outbox, pipelines) -> None:
    """The checkpoint writer lists alice's markers before ``forget``; while that listing is under
    way, ending another conversation of hers reads the marker. The older listing, finishing last,
    must not make the pipeline forget the marker it already read (a conversation starting next,
    whose watch is set from the markers kept, would not be flagged; the writer would trust the
    older listing and write the erased conversation's checkpoints again)."""
    slow = SlowErasureListing(make_outbox())
    pipeline = new_pipeline(pipelines, fake_store, slow, erasure_refresh_seconds=60.0)
    live, other = entry("alice", "c1", open=True), entry("alice", "c2")
    pipeline.checkpoint(live)
    assert slow.listing.wait(30)
    make_outbox().add_erasure(ErasureMarker(tenant_id="acme", user_id="alice"))
    assert pipeline.end_conversation(other) is None  # read the marker: dropped
    assert pipeline.watch_erasure(live).found
    slow.go.set()
    assert pipeline.flush(30)
    assert pipeline.watch_erasure(live).found  # False once, when the older listing (no marker) replaced it


def test_the_checkpoint_writer_trusts_a_listing_for_the_refresh_time_from_when_it_started(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    """A listing that took 4 s (begun before ``forget``'s marker) is trusted only until 5 s after it
    began, as ``forget``'s settle time (7 s) assumes, not for 5 s after it ended."""
    import memory.pipeline.background as background

    clock = FakeMonotonic()
    monkeypatch.setattr(background, "time", clock)
    slow = SlowErasureListing(make_outbox())
    pipeline = new_pipeline(pipelines, fake_store, slow, erasure_refresh_seconds=5.0)
    live = entry("alice", "c1", open=True)
    pipeline.checkpoint(live)
    assert slow.listing.wait(30)
    make_outbox().add_erasure(ErasureMarker(tenant_id="acme", user_id="alice"))  # forget, meanwhile
    clock.now += 4.0
    slow.go.set()
    assert wait_until(lambda: pipeline.metrics["checkpoints"] == 1, timeout=30)
    make_outbox().remove(live.entry_id, "acme")  # forget deletes what that write put back
    clock.now += 1.5  # 5.5 s after the listing began, 1.5 s after it ended
    pipeline.checkpoint(dataclasses.replace(live, transcript=[*live.transcript, {"role": "user", "text": "more"}]))
    assert wait_until(lambda: pipeline.metrics["checkpoints"] + pipeline.metrics["erased_dropped"] == 2, timeout=30)
    assert make_outbox().get(live.entry_id, "acme") is None  # on main: written back from the stale listing


def test_erasing_a_tenant_or_one_conversation(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    c1, c2, other = entry("alice", "c1"), entry("alice", "c2"), entry("bob", "c3")
    for e in (c1, c2, other):
        outbox.put(e)
    assert erase(outbox, fake_store, tenant_id="acme", user_id="alice", conversation_id="c1").outbox_entries == 1
    assert sorted(e.conversation_id for e in outbox.pending()) == ["c2", "c3"]
    assert erase(outbox, fake_store, tenant_id="acme").outbox_entries == 2
    for e in (c1, c2, other):
        outbox.put(e)  # late writers
    pipeline = new_pipeline(pipelines, fake_store, make_outbox())
    pipeline.replay_pending()
    assert pipeline.wait(30) and fake_store.store_calls == [] and outbox.pending() == []


# -- bounded busy time ---------------------------------------------------------------------


def test_a_summary_that_keeps_failing_is_dead_lettered_and_the_app_is_idle_again(fake_store, make_outbox, pipelines) -> None:
    fake_store.fail_store = BackendUnavailable("outage")
    busy = BusyTasks()
    pipeline = new_pipeline(
        pipelines, fake_store, make_outbox(), retry=FAST, on_task_start=busy.start, on_task_end=busy.end
    )
    pipeline.start_sweeper()
    e = entry()
    pipeline.end_conversation(e)
    assert wait_until(lambda: not busy.open and not pipeline.waiting)  # back to Healthy
    assert len(fake_store.store_calls) == FAST.max_attempts * FAST.max_rounds
    (letter,) = make_outbox().dead_letters()
    assert letter.reason == "BackendUnavailable" and letter.entry.entry_id == e.entry_id
    assert make_outbox().pending() == [] and pipeline.metrics["dead_lettered"] == 1
    fake_store.fail_store = None  # e.g. the outage is over: `outbox retry`, then a replay
    assert make_outbox().revive(e.entry_id, "acme") is not None
    assert pipeline.replay_pending() == 1 and pipeline.wait(30) and fake_store.memories != {}


def test_an_error_retrying_cannot_fix_is_dead_lettered_at_once(fake_store, make_outbox, pipelines) -> None:
    fake_store.fail_store = AccessDenied("no model access")
    busy = BusyTasks()
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), on_task_start=busy.start, on_task_end=busy.end)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30) and busy.open == set() and pipeline.waiting == 0
    assert len(fake_store.store_calls) == 1
    assert [d.reason for d in make_outbox().dead_letters()] == ["AccessDenied"]
    assert pipeline.metrics["dead_lettered_AccessDenied"] == 1


def test_dead_lettering_an_adopted_checkpoint_never_deletes_its_live_process_newer_version(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    """A process adopted a checkpoint whose process lives on (a turn longer than orphan_after),
    and its summary met an error retrying cannot fix. Dead-lettering moved the letter in, then
    deleted the pending entry whatever its version: the live process's newer version, written
    meanwhile (here its closed entry, as its end_session writes it), went with it, and that
    process's own summary of it found nothing (the dead letter holds only the older turns). Only
    the version dead-lettered is deleted now; a newer one stays, with no letter of the older."""
    live_outbox = make_outbox()
    first = entry(open=True, created_at=(datetime.now(timezone.utc) - timedelta(minutes=20)).isoformat())
    live_outbox.put(first)
    ended = dataclasses.replace(first, open=False, created_at=datetime.now(timezone.utc).isoformat(),
                                transcript=[*first.transcript, {"role": "user", "text": "My boat is Wave."}])

    def refused_after_the_live_end(*args: Any, **kwargs: Any) -> Any:
        live_outbox.put(ended)  # the live process ends its conversation while the adopter works
        raise AccessDenied("no model access")

    monkeypatch.setattr(fake_store, "store_units", refused_after_the_live_end)
    replayer = new_pipeline(pipelines, fake_store, make_outbox(), orphan_after_seconds=60)
    assert replayer.replay_pending() == 1 and replayer.wait(30)
    (pending,) = make_outbox().pending()
    assert not pending.open and "Wave" in pending.transcript[-1]["text"]
    assert make_outbox().dead_letters() == []


@pytest.mark.parametrize("stored_first", [True, False], ids=["newer-stored", "newer-checkpointed-then-killed"])
def test_retrying_a_dead_letter_never_brings_back_an_older_transcript_than_one_written_since(
    fake_store, make_outbox, pipelines, stored_first: bool
) -> None:
    # A library agent ends its conversation (end_session) before the model access is granted:
    # dead-lettered. The conversation goes on (same key, longer transcript) and ends again, or
    # its process is killed after the turn's checkpoint; then the operator runs `outbox retry`
    # for the dead letters, as the docs say, and a replay runs.
    fake_store.fail_store = AccessDenied("no model access")
    pipeline = new_pipeline(pipelines, fake_store, make_outbox())
    first = entry(text="My locker code is 1234.")
    pipeline.end_conversation(first)
    assert pipeline.wait(30) and len(make_outbox().dead_letters()) == 1
    fake_store.fail_store = None
    later = dataclasses.replace(
        first,
        transcript=[*first.transcript, {"role": "user", "text": "My badge number is 9876."}],
        created_at=datetime.now(timezone.utc).isoformat(),
    )
    if stored_first:
        pipeline.end_conversation(later)
        assert pipeline.wait(30) and fake_store.memories != {}
    else:
        pipeline.checkpoint(later)
        assert pipeline.flush(30)
        pipeline.shutdown(wait=False)  # killed
    for letter in make_outbox().dead_letters():  # `python -m scripts outbox retry`
        make_outbox().revive(letter.entry.entry_id, letter.entry.tenant_id)
    replayer = new_pipeline(pipelines, fake_store, make_outbox())
    replayer.replay_pending()
    assert replayer.wait(30) and make_outbox().pending() == []
    stored = " ".join(m.content for m in [*fake_store.memories.values(), *fake_store.excerpts.values()])
    assert "1234" in stored and "9876" in stored  # the later turn is kept, not replaced by the older version


def test_the_dead_letters_remembered_for_superseding_are_bounded(
    fake_store, make_outbox, pipelines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each dead letter was remembered for the life of the process (one reference per letter, an
    unbounded set); only the latest ``DEAD_LETTERS_REMEMBERED`` are, and those are still purged
    when their conversation goes on."""
    from memory.pipeline import background

    monkeypatch.setattr(background, "DEAD_LETTERS_REMEMBERED", 3)
    fake_store.fail_store = AccessDenied("no model access")
    pipeline = new_pipeline(pipelines, fake_store, make_outbox())
    dead = [entry(conversation=f"c{n}", text=f"My locker code is {n}000.") for n in range(8)]
    for letter in dead:
        pipeline.end_conversation(letter)
        assert pipeline.wait(30)
    assert len(make_outbox().dead_letters()) == 8
    assert len(pipeline._dead) == 3
    fake_store.fail_store = None

    def goes_on(e: OutboxEntry) -> OutboxEntry:
        return dataclasses.replace(e, transcript=[*e.transcript, {"role": "user", "text": "My badge is 9876."}],
                                   created_at=datetime.now(timezone.utc).isoformat())

    pipeline.end_conversation(goes_on(dead[-1]))  # remembered: its older letter is purged
    pipeline.end_conversation(goes_on(dead[0]))  # forgotten: its letter stays (documented)
    assert pipeline.wait(30)
    assert sorted(d.entry.conversation_id for d in make_outbox().dead_letters()) == [f"c{n}" for n in range(7)]


def test_dead_lettering_is_bounded_by_time_too(fake_store, make_outbox, pipelines) -> None:
    fake_store.fail_store = BackendUnavailable("outage")
    retry = RetryPolicy(max_attempts=1, base_delay=0.001, max_delay=0.001, sweep_base_delay=0.05,
                        sweep_max_delay=0.05, max_rounds=1000, max_busy_seconds=0.2)
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), retry=retry)
    pipeline.start_sweeper()
    pipeline.end_conversation(entry())
    assert wait_until(lambda: make_outbox().dead_letters() != [])
    assert len(make_outbox().dead_letters()) == 1 and 2 <= len(fake_store.store_calls) < 20



def test_a_re_sweep_due_after_the_time_bound_does_not_keep_the_app_busy_until_then(
    fake_store, make_outbox, pipelines
) -> None:
    # AGENT_SUMMARY_MAX_ROUNDS above the default: the re-sweeps double (30 s, 60 s, ... 600 s),
    # so the round that straddles max_busy_seconds was due long after it, and the entry kept
    # the app HealthyBusy (and made its next attempt) until then. Here the first re-sweep is
    # due 60 s after a failure, the time bound is 0.3 s.
    fake_store.fail_store = BackendUnavailable("outage")
    retry = RetryPolicy(max_attempts=1, base_delay=0.001, max_delay=0.001, sweep_base_delay=60.0,
                        sweep_max_delay=60.0, max_rounds=20, max_busy_seconds=0.3)
    pipeline, busy = swept_pipeline(pipelines, fake_store, make_outbox(), retry)
    pipeline.end_conversation(entry())
    assert wait_until(lambda: make_outbox().dead_letters() != [] and not busy.open, timeout=20)
    # one attempt at the start, a last one once the bound is reached; none after it
    assert len(fake_store.store_calls) == 2 and pipeline.waiting == 0


def test_the_time_bound_counts_from_the_first_failed_attempt_not_from_the_end_of_the_first_round(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    # Every attempt fails slowly (a store or model call timing out). max_busy_seconds is
    # documented as "this long after its first failure": once it has passed, no further round
    # may start (it did: the first failure was only counted when the first round had ended).
    fail_slowly(fake_store, monkeypatch, "timed out", 0.1)
    retry = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.001, sweep_base_delay=0.01,
                        sweep_max_delay=0.01, max_rounds=1000, max_busy_seconds=0.25)
    pipeline, busy = swept_pipeline(pipelines, fake_store, make_outbox(), retry)
    pipeline.end_conversation(entry())
    assert wait_until(lambda: make_outbox().dead_letters() != [] and not busy.open)
    assert len(fake_store.store_calls) <= retry.max_attempts  # 4 attempts take 0.4 s > 0.25 s: no second round


def test_a_failing_backlog_keeps_the_app_busy_for_the_time_bound_not_for_each_entry(
    fake_store, make_outbox, pipelines, monkeypatch
) -> None:
    # A fresh process (a new AgentCore session) replays a backlog during a model outage. Each
    # entry is bounded, but one after the other they kept the app HealthyBusy for the whole
    # backlog (AgentCore keeps a busy session alive, billed, up to its maximum lifetime).
    fail_slowly(fake_store, monkeypatch, "model outage", 0.05)
    outbox = make_outbox()
    backlog = [entry(f"user-{n}", f"c{n}") for n in range(12)]
    for e in backlog:
        outbox.put(e)
    retry = RetryPolicy(max_attempts=1, base_delay=0.001, max_delay=0.001, sweep_base_delay=0.01,
                        sweep_max_delay=0.01, max_rounds=1000, max_busy_seconds=0.3)
    busy = BusyTasks()
    pending_when_idle: list[int] = []
    end = busy.end

    def end_and_look(token: int) -> None:
        end(token)
        if not busy.open and not pending_when_idle:
            pending_when_idle.append(len(make_outbox().pending()))

    busy.end = end_and_look  # type: ignore[method-assign]
    pipeline = new_pipeline(pipelines, fake_store, outbox, retry=retry, max_workers=1,
                            on_task_start=busy.start, on_task_end=busy.end)
    pipeline.start_sweeper()
    assert pipeline.replay_pending() == 12
    assert wait_until(lambda: pending_when_idle)
    # Healthy once 0.3 s of failures passed: at most six 50 ms attempts, so most were left
    assert pending_when_idle[0] >= 6
    assert pipeline.metrics["busy_released"] == 1
    # they go on in the background, not busy, each within its own bounds: nothing is lost
    assert wait_until(lambda: make_outbox().pending() == [])
    assert len(make_outbox().dead_letters()) == 12 and busy.open == set()
    # once a summary is stored again, the app is busy with its work again
    fake_store.fail_store = None
    started = busy.started
    pipeline.end_conversation(entry("zoe", "c-new"))
    assert pipeline.wait(30) and busy.started == started + 1 and busy.open == set()
    fake_store.fail_store = BackendUnavailable("model outage")
    pipeline.end_conversation(entry("yann", "c-next"))
    assert busy.started == started + 2 and len(busy.open) == 1  # busy again while it fails


def test_a_forget_during_a_failing_summary_leaves_no_dead_letter(fake_store, make_outbox, pipelines) -> None:
    fake_store.fail_store = AccessDenied("no model access")  # dead-lettered at once
    gated = GatedSummarizer()
    pipeline = new_pipeline(pipelines, fake_store, make_outbox(), summarizer=gated)
    pipeline.end_conversation(entry("alice", text="My PIN is 4321."))
    assert gated.started.wait(30)  # checked the markers (none yet), now summarizing
    result = erase(make_outbox(), fake_store, tenant_id="acme", user_id="alice")
    assert result.outbox_entries == 1 and result.dead_letters == 0  # nothing dead-lettered yet
    gated.gate.set()  # the store then fails for good
    assert pipeline.wait(30)
    assert make_outbox().dead_letters() == [] and make_outbox().pending() == []


def test_an_outbox_that_stays_unreadable_does_not_keep_the_app_busy(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    busy = BusyTasks()
    pipeline = new_pipeline(pipelines, fake_store, outbox, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.start_sweeper()
    reads = []
    read_markers = outbox.erasures

    def read_once_then_outage(*args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        if len(reads) > 1:  # the outbox fails for longer than the busy bound
            raise BackendUnavailable("outbox outage")
        return read_markers(*args, **kwargs)

    outbox.erasures = read_once_then_outage  # type: ignore[method-assign]
    assert pipeline.end_conversation(entry()) is not None  # durable; every later check fails
    assert wait_until(lambda: not busy.open and not pipeline.waiting)  # back to Healthy
    assert [e.conversation_id for e in make_outbox().pending()] == ["c1"]  # kept for a later replay

# -- checkpoints off the response path --------------------------------------------------------


def test_checkpoints_are_coalesced_and_the_closed_entry_supersedes_them(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    writes: list[OutboxEntry] = []
    real_put = outbox.put

    def counting_put(e: OutboxEntry) -> str:
        writes.append(e)
        return real_put(e)

    outbox.put = counting_put  # type: ignore[method-assign]
    pipeline = new_pipeline(pipelines, fake_store, outbox, checkpoint_interval=0.2)
    base = entry()
    turns = [OutboxEntry(**{**base.__dict__, "transcript": base.transcript * n}) for n in range(1, 21)]
    for turn in turns:  # twenty turns in quick succession
        pipeline.checkpoint(turn)
    assert pipeline.flush(30)
    opened = [w for w in writes if w.open]
    assert 1 <= len(opened) <= 5 and len(opened[-1].transcript) == 20  # coalesced; latest transcript wins
    pipeline.checkpoint(OutboxEntry(**{**base.__dict__, "transcript": base.transcript * 21}))
    pipeline.end_conversation(OutboxEntry(**{**base.__dict__, "transcript": base.transcript * 22}))
    assert pipeline.wait(30) and pipeline.flush(30)
    assert not writes[-1].open and len(writes[-1].transcript) == 22  # the queued checkpoint was dropped
    assert outbox.pending() == [] and len(fake_store.store_calls) == 1


def test_an_end_that_cannot_be_written_keeps_the_queued_checkpoint(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    pipeline = new_pipeline(pipelines, fake_store, outbox, checkpoint_interval=0.2)
    base = entry()
    pipeline.checkpoint(base)  # the turn's checkpoint is queued; end_session follows at once
    write = outbox.put

    def outage(e: OutboxEntry) -> str:
        raise BackendUnavailable("outbox outage")

    outbox.put = outage  # type: ignore[method-assign]
    with pytest.raises(BackendUnavailable):  # the app answers 503: retry end_session
        pipeline.end_conversation(OutboxEntry(**{**base.__dict__, "transcript": base.transcript * 2}))
    outbox.put = write  # type: ignore[method-assign]  # the outage ends; the retry may never come
    assert pipeline.flush(30)
    (left,) = make_outbox().pending()
    assert left.open and left.transcript == base.transcript  # the answered turn is durable


def test_a_checkpoint_whose_write_failed_is_written_again_without_a_new_turn(fake_store, make_outbox, pipelines) -> None:
    outbox = make_outbox()
    pipeline = new_pipeline(pipelines, fake_store, outbox)
    write, failed = outbox.put, []

    def fail_once(e: OutboxEntry) -> str:
        if not failed:
            failed.append(e)
            raise BackendUnavailable("outbox outage")
        return write(e)

    outbox.put = fail_once  # type: ignore[method-assign]
    pipeline.checkpoint(entry())  # the last turn before the user goes quiet
    assert wait_until(lambda: failed != [] and len(make_outbox().pending()) == 1)  # durable after all
