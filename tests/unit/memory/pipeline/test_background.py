"""Outbox durability and the background summary pipeline (outbox first, store, then remove)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from strands import Agent

from memory.pipeline import background
from memory.pipeline.background import RetryPolicy
from memory.errors import BackendUnavailable
from memory.keys import summary_key
from memory.types import Scope
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.plugin.invocation import CONVERSATION_ID, TENANT_CONTEXT, USER_ID, InvalidInvocationState
from memory.plugin.plugin import MemoryPlugin
from memory.pipeline.summarizer import Summarizer
from tests.support.busy import BusyTasks, GatedSummarizer, wait_until
from tests.support.scripted_model import ScriptedModel


def entry(conversation: str = "conv-1", text: str = "My budget is 2M.", **kwargs: Any) -> OutboxEntry:
    return OutboxEntry(
        tenant_id=kwargs.pop("tenant_id", "acme"),
        user_id=kwargs.pop("user_id", "alice"),
        agent_name=kwargs.pop("agent_name", "orchestrator"),
        conversation_id=conversation,
        transcript=[{"role": "user", "text": text}, {"role": "assistant", "text": "Noted."}],
        **kwargs,
    )


# -- outbox ------------------------------------------------------------------------------------


def test_outbox_put_is_durable_idempotent_and_removable(outbox_dir: Path) -> None:
    outbox = LocalOutbox(outbox_dir)
    first = outbox.put(entry(text="v1"))
    second = outbox.put(entry(text="v2"))  # same conversation ended again
    outbox.put(entry("conv-2"))
    assert first == second == summary_key("acme", "alice", "orchestrator", "conv-1")
    reopened = LocalOutbox(outbox_dir)  # a new process sees the same entries
    pending = reopened.pending()
    assert [e.conversation_id for e in pending] == ["conv-1", "conv-2"]
    assert pending[0].transcript[0]["text"] == "v2"
    assert sorted(p.name for p in outbox_dir.glob("*.json")) == sorted(f"{e.entry_id}.json" for e in pending)
    reopened.remove(first)
    reopened.remove(first)  # missing is fine
    assert [e.conversation_id for e in outbox.pending()] == ["conv-2"]


def test_outbox_round_trips_every_field(outbox_dir: Path) -> None:
    original = entry(tenant_id=None, attempts=2, opened="2025-01-02T03:04:05.678+00:00~0a1b2c3d", open=True)
    outbox = LocalOutbox(outbox_dir)
    outbox.put(original)
    assert outbox.get(original.entry_id) == original
    raw = json.loads((outbox_dir / f"{original.entry_id}.json").read_text())
    assert set(raw) == {"tenant_id", "user_id", "agent_name", "conversation_id", "transcript", "created_at", "attempts",
                        "opened", "open", "key"}


def test_outbox_ids_are_distinct_per_identity_part(outbox_dir: Path) -> None:
    ids = {
        entry().entry_id,
        entry(tenant_id="other").entry_id,
        entry(tenant_id=None).entry_id,
        entry(user_id="bob").entry_id,
        entry(agent_name="travel").entry_id,
        entry("conv-2").entry_id,
    }
    assert len(ids) == 6


def test_a_reused_conversation_id_with_a_new_start_marker_is_a_separate_entry(outbox_dir: Path) -> None:
    outbox = LocalOutbox(outbox_dir)
    first = outbox.put(entry(text="I own a cat.", opened="2025-01-01T00:00:00.000+00:00~00000001"))
    again = outbox.put(entry(text="I own a cat. And a dog.", opened="2025-01-01T00:00:00.000+00:00~00000001"))
    later = outbox.put(entry(text="I moved to Porto.", opened="2025-03-01T00:00:00.000+00:00~00000002"))
    assert first == again != later
    assert sorted(e.transcript[0]["text"] for e in outbox.pending()) == ["I moved to Porto.", "I own a cat. And a dog."]


def test_an_entry_written_before_start_markers_keeps_its_id(outbox_dir: Path) -> None:
    legacy = entry()
    raw = {k: v for k, v in legacy.to_json().items() if k != "opened"}
    outbox_dir.mkdir(parents=True)
    (outbox_dir / f"{summary_key('acme', 'alice', 'orchestrator', 'conv-1')}.json").write_text(json.dumps(raw))
    (pending,) = LocalOutbox(outbox_dir).pending()
    assert pending.opened is None and pending.entry_id == summary_key("acme", "alice", "orchestrator", "conv-1")
    assert LocalOutbox(outbox_dir).get(pending.entry_id) == pending  # replay finds it under its file name


def test_outbox_skips_an_unreadable_file(outbox_dir: Path) -> None:
    outbox = LocalOutbox(outbox_dir)
    outbox.put(entry())
    (outbox_dir / "sum-broken.json").write_text("{not json")
    assert [e.conversation_id for e in outbox.pending()] == ["conv-1"]


# -- pipeline ----------------------------------------------------------------------------------


def test_end_conversation_stores_exactly_one_summary_then_clears_the_outbox(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store)
    e = entry()
    pipeline.end_conversation(e)
    assert pipeline.wait(30)
    (call,) = fake_store.store_calls
    assert call["scope"] == Scope("alice", "acme", "orchestrator")
    assert call["key"] == e.key and call["memory_type"] == "summary" and call["conversation_id"] == "conv-1"
    assert call["content"] == "My budget is 2M."
    assert pipeline.outbox.pending() == []


def test_an_entry_whose_user_id_cannot_be_stored_is_refused_not_accepted(fake_store, make_pipeline) -> None:
    """Accepted, it would have been dead-lettered: S3 Vectors refuses its units' metadata."""
    from memory.errors import IdentityTooLong

    pipeline = make_pipeline(fake_store)
    too_long = entry(user_id="u" * 2_000)
    with pytest.raises(IdentityTooLong, match=r"entry\.user_id is too long"):
        pipeline.end_conversation(too_long)
    with pytest.raises(IdentityTooLong, match=r"entry\.user_id is too long"):
        pipeline.checkpoint(dataclasses.replace(too_long, open=True))
    assert pipeline.flush(10) and pipeline.wait(10)
    assert pipeline.outbox.pending() == [] and pipeline.outbox.dead_letters() == [] and fake_store.store_calls == []


def test_entry_is_durable_before_the_work_runs(fake_store, make_pipeline) -> None:
    gate = threading.Event()
    seen: list[int] = []

    class GatedSummarizer(Summarizer):
        def summarize(self, turns):  # type: ignore[override]
            gate.wait(5)
            return super().summarize(turns)

    pipeline = make_pipeline(fake_store, GatedSummarizer())
    pipeline.end_conversation(entry())
    seen.append(len(LocalOutbox(pipeline.outbox.directory).pending()))  # accepted = already on disk
    gate.set()
    assert pipeline.wait(30)
    assert seen == [1] and pipeline.outbox.pending() == []


def raise_first(fake_store: Any, *errors: Exception) -> None:
    """Make ``fake_store.store_units`` raise ``errors`` one call each, then store."""
    failures, original = iter(errors), fake_store.store_units

    def store(*args: Any, **kwargs: Any):
        error = next(failures, None)
        if error is not None:
            raise error
        return original(*args, **kwargs)

    fake_store.store_units = store  # type: ignore[method-assign]


def test_transient_failure_retries_with_backoff_and_stores_once(fake_store, make_pipeline) -> None:
    raise_first(fake_store, BackendUnavailable("throttled"))
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30)
    assert len(fake_store.memories) == 1
    assert pipeline.metrics["failed_attempts"] == 1 and pipeline.metrics["stored"] == 1
    assert pipeline.outbox.pending() == []


@pytest.mark.parametrize(("code", "status"), [("ExpiredToken", 400), ("ExpiredTokenException", 403)])
def test_expired_credentials_are_retried_not_dead_lettered(fake_store, make_pipeline, code: str, status: int) -> None:
    """S3's ExpiredToken (400) and the JSON services' ExpiredTokenException: the credentials are
    refreshed meanwhile; on main they were invalid input or a denial, dead-lettered at once."""
    from botocore.exceptions import ClientError

    from memory.aws import translate_error

    expired = ClientError({"Error": {"Code": code, "Message": "The provided token has expired."},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "PutVectors")
    raise_first(fake_store, translate_error(expired, "s3vectors put_vectors memory-acme"))
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30)
    assert len(fake_store.memories) == 1 and pipeline.outbox.dead_letters() == []
    assert pipeline.metrics["failed_attempts"] == 1 and pipeline.outbox.pending() == []


def test_exhausted_retries_leave_the_entry_and_a_restart_replays_it_once(fake_store, make_pipeline) -> None:
    fake_store.fail_store = BackendUnavailable("down")
    crashed = make_pipeline(fake_store, retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002))
    crashed.end_conversation(entry())
    assert crashed.wait(30)
    assert crashed.metrics["exhausted"] == 1 and fake_store.memories == {}
    (left,) = crashed.outbox.pending()
    assert left.attempts == 2
    crashed.shutdown()

    fake_store.fail_store = None
    restarted = make_pipeline(fake_store)
    assert restarted.replay_pending() == 1
    assert restarted.wait(30)
    assert len(fake_store.memories) == 1 and restarted.outbox.pending() == []
    assert restarted.replay_pending() == 0
    assert len(fake_store.memories) == 1


FAST_SWEEP = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002, sweep_base_delay=0.02, sweep_max_delay=0.05)


def failing_then_ok(fake_store: Any, failures: int, busy: BusyTasks | None = None) -> list[int]:
    """Make ``fake_store.store_units`` fail ``failures`` times, then work; returns the open-task
    counts seen by every store call."""
    original, seen, left = fake_store.store_units, [], [failures]

    def store(*args: Any, **kwargs: Any):
        seen.append(len(busy.open) if busy else -1)
        if left[0] > 0:
            left[0] -= 1
            raise BackendUnavailable("outage")
        return original(*args, **kwargs)

    fake_store.store_units = store  # type: ignore[method-assign]
    return seen


def test_sweep_backoff_doubles_from_30_seconds_to_10_minutes() -> None:
    policy = RetryPolicy()
    assert [policy.sweep_delay(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]


def test_exhausted_entry_is_re_swept_in_process_and_stored_once_while_busy(fake_store, make_pipeline) -> None:
    busy = BusyTasks()
    seen = failing_then_ok(fake_store, failures=5, busy=busy)  # 2 attempts per round: 3 rounds
    retry = dataclasses.replace(FAST_SWEEP, sweep_base_delay=0.2, sweep_max_delay=0.4)  # 0.2 s, then 0.4 s
    pipeline = make_pipeline(fake_store, retry=retry, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.start_sweeper()
    e = entry()
    pipeline.end_conversation(e)

    assert wait_until(lambda: pipeline.waiting == 1)  # first round exhausted: waiting, not in flight
    assert busy.open != set() and pipeline.outbox.get(e.entry_id) is not None
    assert wait_until(lambda: pipeline.metrics["stored"] == 1) and pipeline.wait(30)
    assert list(fake_store.memories) == [e.key] and len(seen) == 6
    assert pipeline.metrics["exhausted"] == 2 and pipeline.metrics["swept"] == 2
    assert pipeline.outbox.pending() == [] and pipeline.waiting == 0
    assert seen == [1] * 6 and busy.open == set() and busy.started == 1  # one busy task, open throughout


def test_without_the_sweeper_an_exhausted_entry_waits_but_keeps_the_app_busy(fake_store, make_pipeline) -> None:
    busy = BusyTasks()
    failing_then_ok(fake_store, failures=2)
    pipeline = make_pipeline(fake_store, retry=FAST_SWEEP, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30) and wait_until(lambda: pipeline.waiting == 1)
    assert len(busy.open) == 1 and fake_store.memories == {}
    assert wait_until(lambda: pipeline.sweep() == 1) and pipeline.wait(30)  # once the backoff elapsed
    assert len(fake_store.memories) == 1 and busy.open == set() and pipeline.sweep() == 0


def test_sweep_does_not_resubmit_an_entry_in_flight(fake_store, make_pipeline) -> None:
    started, gate = threading.Event(), threading.Event()
    calls: list[int] = []

    class Gated(Summarizer):
        def summarize(self, turns):  # type: ignore[override]
            calls.append(1)
            started.set()
            gate.wait(5)
            return "x."

    failing_then_ok(fake_store, failures=2)
    pipeline = make_pipeline(fake_store, Gated(), retry=FAST_SWEEP)
    gate.set()
    pipeline.end_conversation(entry())
    assert pipeline.wait(30) and wait_until(lambda: pipeline.waiting == 1) and len(calls) == 2
    gate.clear()
    started.clear()
    assert pipeline.replay_pending() == 1 and started.wait(30)  # in flight now, blocked
    assert pipeline.waiting == 0 and pipeline.sweep() == 0  # not waiting any more: nothing to re-submit
    gate.set()
    assert pipeline.wait(30) and len(calls) == 3 and len(fake_store.memories) == 1


def test_a_replay_that_finds_an_entry_in_flight_leaves_it_to_its_task(fake_store, make_pipeline) -> None:
    """The start-up replay runs on a thread while the app serves: it may list the closed entry of
    a conversation this process just ended and is summarizing. That is no newer transcript: the
    running task keeps it (a permanent failure is dead-lettered at once, not kept waiting)."""
    from memory.errors import NotFound

    slow = GatedSummarizer()
    fake_store.fail_store = NotFound("index not onboarded")
    pipeline = make_pipeline(fake_store, slow, retry=FAST_SWEEP)
    pipeline.end_conversation(entry())
    assert slow.started.wait(30)
    assert pipeline.replay_pending() == 0  # in flight here: nothing to schedule
    slow.gate.set()
    assert pipeline.wait(30)
    assert pipeline.waiting == 0 and pipeline.metrics["dead_lettered"] == 1
    assert [d.reason for d in pipeline.outbox.dead_letters(None)] == ["NotFound"]


def test_a_re_run_requested_while_a_summary_fails_runs_at_once(fake_store, make_pipeline) -> None:
    """The start-up replay can list a closed entry in the instant between its write and its
    scheduling by ``end_conversation``; the replay's task is then running when the end asks for
    a re-run. A re-run requested during a failed attempt reads the entry again at once (here a
    permanent failure: dead-lettered, not left waiting for a sweep with the app busy)."""
    from memory.errors import NotFound

    slow = GatedSummarizer()
    fake_store.fail_store = NotFound("index not onboarded")
    pipeline = make_pipeline(fake_store, slow, retry=FAST_SWEEP)
    put = pipeline.outbox.put

    def put_then_replay(e: OutboxEntry) -> str:
        written = put(e)
        assert pipeline.replay_pending() == 1 and slow.started.wait(30)  # the replay's task runs
        return written

    pipeline.outbox.put = put_then_replay  # type: ignore[method-assign]
    pipeline.end_conversation(entry())  # finds its entry in flight: asks for a re-run
    slow.gate.set()
    assert pipeline.wait(30)
    assert pipeline.waiting == 0 and pipeline.metrics["dead_lettered"] == 1
    assert [d.reason for d in pipeline.outbox.dead_letters(None)] == ["NotFound"]


def test_shutdown_ends_the_busy_task_and_leaves_the_entry_for_the_next_start(fake_store, make_pipeline) -> None:
    busy = BusyTasks()
    failing_then_ok(fake_store, failures=2)
    pipeline = make_pipeline(fake_store, retry=FAST_SWEEP, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.end_conversation(entry())
    assert wait_until(lambda: pipeline.waiting == 1)
    pipeline.shutdown(wait=True)
    assert busy.open == set() and pipeline.waiting == 0 and pipeline.sweep() == 0
    assert len(pipeline.outbox.pending()) == 1 and fake_store.memories == {}
    restarted = make_pipeline(fake_store)
    assert restarted.replay_pending() == 1 and restarted.wait(30) and len(fake_store.memories) == 1


def test_replaying_a_summary_already_stored_does_not_duplicate(fake_store, make_pipeline, outbox_dir) -> None:
    # the worker stored the vector but died before removing the outbox entry
    e = entry()
    LocalOutbox(outbox_dir).put(e)
    fake_store.store(Scope("alice", "acme", "orchestrator"), "My budget is 2M.", conversation_id="conv-1", key=e.key)
    pipeline = make_pipeline(fake_store)
    assert pipeline.replay_pending() == 1
    assert pipeline.wait(30)
    assert list(fake_store.memories) == [e.key]


def test_empty_conversation_stores_nothing_and_clears_the_entry(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(entry(text="what is the weather?"))  # only a question
    assert pipeline.wait(30)
    assert fake_store.store_calls == [] and pipeline.outbox.pending() == []
    assert pipeline.metrics["skipped_empty"] == 1


def test_task_hooks_bracket_every_task(fake_store, make_pipeline) -> None:
    events: list[tuple[str, Any]] = []
    pipeline = make_pipeline(
        fake_store,
        on_task_start=lambda name: events.append(("start", name)) or f"token-{name}",
        on_task_end=lambda token: events.append(("end", token)),
    )
    pipeline.end_conversation(entry("a"))
    pipeline.end_conversation(entry("b"))
    assert pipeline.wait(30)
    starts = [e for e in events if e[0] == "start"]
    ends = [e for e in events if e[0] == "end"]
    assert len(starts) == 2 and all(name.startswith("memory-summary-") for _, name in starts)
    assert sorted(token for _, token in ends) == sorted(f"token-{name}" for _, name in starts)


def test_failing_task_hooks_do_not_break_the_pipeline(fake_store, make_pipeline) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("hook broke")

    pipeline = make_pipeline(fake_store, on_task_start=boom, on_task_end=boom)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30)
    assert len(fake_store.memories) == 1


def test_wait_times_out_while_work_is_blocked(fake_store, make_pipeline) -> None:
    gate = threading.Event()

    class Blocked(Summarizer):
        def summarize(self, turns):  # type: ignore[override]
            gate.wait(5)
            return "done."

    pipeline = make_pipeline(fake_store, Blocked())
    pipeline.end_conversation(entry())
    assert pipeline.wait(0.05) is False
    gate.set()
    assert pipeline.wait(30) is True


def test_ending_again_while_running_summarizes_the_newer_transcript(fake_store, make_pipeline) -> None:
    slow = GatedSummarizer()
    started, gate = slow.started, slow.gate
    pipeline = make_pipeline(fake_store, slow)
    pipeline.end_conversation(entry(text="first part."))
    assert started.wait(30)
    pipeline.end_conversation(entry(text="first part. second part."))
    gate.set()
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()
    assert memory.content == "first part. second part."
    assert pipeline.outbox.pending() == []



def test_ending_again_while_the_finished_summary_releases_its_claim_summarizes_the_newer_transcript(
    fake_store, make_pipeline
) -> None:
    """The summary of the first end is stored and its entry removed; the conversation is ended
    again (a longer transcript) while the worker still releases its claim (a conditional S3
    write): the newer entry is summarized too, not left in the outbox until a restart."""
    tasks = BusyTasks()
    pipeline = make_pipeline(fake_store, on_task_start=tasks.start, on_task_end=tasks.end)
    releasing, go = threading.Event(), threading.Event()
    real_release = pipeline.outbox.release

    def slow_release(claim: Any) -> None:
        if not releasing.is_set():
            releasing.set()
            assert go.wait(30)
        real_release(claim)

    pipeline.outbox.release = slow_release
    pipeline.end_conversation(entry(text="first part."))
    assert releasing.wait(30) and pipeline.outbox.pending() == []  # stored, entry removed
    pipeline.end_conversation(entry(text="first part. second part."))
    go.set()
    assert pipeline.wait(30) and wait_until(lambda: not tasks.open)
    assert pipeline.outbox.pending() == []
    (memory,) = fake_store.memories.values()
    assert "second part." in memory.content


# -- through the plugin ------------------------------------------------------------------------


def state(**extra: Any) -> dict[str, Any]:
    return {TENANT_CONTEXT: "acme", USER_ID: "alice", CONVERSATION_ID: "conv-9", **extra}


def test_end_session_stores_exactly_one_summary_of_the_full_transcript(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store, Summarizer(ScriptedModel(summary_reply="Alice's budget is 2M. She likes tea.")))
    model = ScriptedModel(default_reply="ok")
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=model, name="orchestrator", plugins=[plugin], callback_handler=None)
    agent("My budget is 2M.", invocation_state=state())
    assert pipeline.metrics["accepted"] == 0
    agent("I like tea.", invocation_state=state(end_session=True))
    assert pipeline.wait(30)
    (call,) = fake_store.store_calls
    assert call["content"] == "Alice's budget is 2M. She likes tea."
    assert plugin.opened is not None
    assert call["key"] == summary_key("acme", "alice", "orchestrator", "conv-9", plugin.opened)
    assert call["conversation_id"] == "conv-9" and call["memory_type"] == "summary"
    summary_request = pipeline.summarizer.model.summary_calls[0].last_user_text
    assert "USER: My budget is 2M." in summary_request and "USER: I like tea." in summary_request


def test_end_conversation_without_a_prompt_uses_the_bound_identity(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store)
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugin], callback_handler=None)
    assert plugin.end_conversation() is None  # nothing yet
    agent("I moved to Porto.", invocation_state=state())
    entry_id = plugin.end_conversation()  # idle timer / SIGTERM path
    assert pipeline.wait(30)
    assert plugin.opened is not None
    assert entry_id == summary_key("acme", "alice", "orchestrator", "conv-9", plugin.opened)
    (memory,) = fake_store.memories.values()
    assert memory.user_id == "alice" and memory.tenant_id == "acme" and memory.content == "I moved to Porto."


def test_a_new_conversation_id_ends_the_previous_one(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store)
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugin], callback_handler=None)
    agent("I own a cat.", invocation_state=state())
    agent("hello there.", invocation_state=state(conversation_id="conv-10"))
    assert pipeline.wait(30)
    assert [m.conversation_id for m in fake_store.memories.values()] == ["conv-9"]


def test_end_session_does_not_wait_for_the_summary(fake_store, make_pipeline) -> None:
    gate = threading.Event()

    class Blocked(Summarizer):
        def summarize(self, turns):  # type: ignore[override]
            gate.wait(5)
            return "x."

    pipeline = make_pipeline(fake_store, Blocked())
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(["bye"]), name="orchestrator", plugins=[plugin], callback_handler=None)
    result = agent("I am done.", invocation_state=state(end_session=True))
    assert str(result).strip() == "bye" and fake_store.store_calls == []  # answered, work pending
    gate.set()
    assert pipeline.wait(30) and len(fake_store.store_calls) == 1


@pytest.mark.parametrize("bad", [{USER_ID: None}, {TENANT_CONTEXT: "NOT VALID"}])
def test_end_session_without_identity_stores_nothing(fake_store, make_pipeline, bad) -> None:
    pipeline = make_pipeline(fake_store)
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugin], callback_handler=None)
    try:
        agent("I like tea.", invocation_state=state(end_session=True, **bad))
    except InvalidInvocationState:
        assert TENANT_CONTEXT in bad  # a malformed tenant fails the turn; a missing user does not
    assert pipeline.wait(30)
    assert fake_store.store_calls == [] and pipeline.outbox.pending() == []


def test_ending_twice_without_new_turns_submits_once_and_continuing_resubmits(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store)
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugin], callback_handler=None)
    agent("I own a cat.", invocation_state=state(end_session=True))
    assert plugin.end_conversation() is None  # idle timer after end_session: nothing new
    assert pipeline.wait(30) and pipeline.metrics["accepted"] == 1
    agent("I also own a dog.", invocation_state=state())  # the same conversation goes on
    assert plugin.end_conversation() is not None
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()  # same key: overwritten with the longer transcript
    assert memory.content == "I own a cat. I also own a dog."
    assert pipeline.metrics["accepted"] == 2


def test_outbox_failure_on_end_session_does_not_fail_the_turn(fake_store, make_pipeline, caplog) -> None:
    pipeline = make_pipeline(fake_store)

    def broken_put(entry: OutboxEntry) -> str:
        raise OSError("disk full")

    pipeline.outbox.put = broken_put  # type: ignore[method-assign]
    plugin = MemoryPlugin(fake_store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(["bye"]), name="orchestrator", plugins=[plugin], callback_handler=None)
    result = agent("I own a cat.", invocation_state=state(end_session=True))
    assert str(result).strip() == "bye"
    assert plugin.metrics["end_failures"] == 1
    assert any("could not record" in r.getMessage() for r in caplog.records)
    with pytest.raises(OSError):  # the explicit call reports it to the app
        plugin.end_conversation()


# -- checkpoints of open conversations ---------------------------------------------------------


def talk(pipeline: Any, *prompts: str) -> MemoryPlugin:
    """A conversation of ``prompts`` on a fresh orchestrator, never ended."""
    plugin = MemoryPlugin(pipeline.store, pipeline=pipeline)
    agent = Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", plugins=[plugin], callback_handler=None)
    for prompt in prompts:
        agent(prompt, invocation_state=state())
        # checkpoints are written in the background, coalesced: wait for each turn's, so that
        # none is superseded by the next turn's (test_durability covers coalescing)
        assert pipeline.flush(30)
    return plugin


def test_checkpoints_are_open_entries_the_pipeline_never_schedules(fake_store, make_pipeline) -> None:
    busy = BusyTasks()
    pipeline = make_pipeline(fake_store, retry=FAST_SWEEP, on_task_start=busy.start, on_task_end=busy.end)
    pipeline.start_sweeper()
    plugin = talk(pipeline, "My budget is 2M.", "I like tea.")
    (pending,) = pipeline.outbox.pending()
    assert pending.open and [t["text"] for t in pending.transcript if t["role"] == "user"] == ["My budget is 2M.", "I like tea."]
    assert pending.entry_id == summary_key("acme", "alice", "orchestrator", "conv-9", plugin.opened)
    assert pipeline.waiting == 0  # nothing is due: neither the sweeper nor a sweep may schedule them
    assert pipeline.wait(0) and pipeline.sweep() == 0
    assert fake_store.store_calls == [] and busy.started == 0  # live: not summarized, app not busy
    assert pipeline.metrics["checkpoints"] == 2 and pipeline.metrics["accepted"] == 0

    assert plugin.end_conversation() == pending.entry_id  # closes the same entry
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()
    assert memory.id == pending.entry_id and memory.content == "My budget is 2M. I like tea."
    assert pipeline.outbox.pending() == [] and busy.open == set()



def test_a_checkpoint_that_keeps_failing_is_reported_once_then_rarely_then_once_written(
    fake_store, make_pipeline, monkeypatch, caplog
) -> None:
    """The writer tries again every second (here at once): the first failure is an ERROR with
    its reason, then at most one line per interval (here: none for an hour, then the next
    failure once the interval is set to 0) counting the failures meanwhile, then one WARNING."""
    monkeypatch.setattr(background, "_CHECKPOINT_RETRY_SECONDS", 0.001)
    monkeypatch.setattr(background, "_CHECKPOINT_FAILURE_LOG_SECONDS", 3600.0, raising=False)
    pipeline = make_pipeline(fake_store)
    write, failures, go_on = pipeline.outbox.put, [], threading.Event()

    def outage_of_31_writes(e: OutboxEntry) -> str:
        if len(failures) == 30:
            go_on.wait(10)  # the 31st failure waits for the interval to have passed
        if len(failures) < 31:
            failures.append(e)
            raise BackendUnavailable("outbox outage")
        return write(e)

    pipeline.outbox.put = outage_of_31_writes
    with caplog.at_level(logging.INFO, logger="memory.pipeline.background"):
        pipeline.checkpoint(entry(open=True))
        assert wait_until(lambda: len(failures) == 30)
        (first,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert first.levelno == logging.ERROR and "checkpoint write failed (BackendUnavailable)" in first.getMessage()
        monkeypatch.setattr(background, "_CHECKPOINT_FAILURE_LOG_SECONDS", 0.0)
        go_on.set()
        assert pipeline.flush(30)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING][1:] == [
        (logging.ERROR, "checkpoint write still failing (BackendUnavailable): 30 failed writes since the last report, 31 in all"),
        (logging.WARNING, "checkpoint written again after 31 failed writes"),
    ]
    (written,) = pipeline.outbox.pending()
    assert written.open and pipeline.metrics["checkpoint_failures"] == 31


def test_a_replay_never_adopts_a_checkpoint_written_after_the_pipeline_started(fake_store, make_pipeline) -> None:
    """The start-up replay runs in the background, beside the process's first turns: with the
    local default (orphans adopted at any age) it must not summarize this process's own live
    conversation as if its process were dead."""
    pipeline = make_pipeline(fake_store, orphan_after_seconds=0.0)
    talk(pipeline, "My budget is 2M.")
    (live,) = pipeline.outbox.pending()
    assert live.open
    assert pipeline.replay_pending() == 0 and pipeline.wait(30)
    assert fake_store.store_calls == [] and pipeline.outbox.pending() == [live]


def test_start_up_replay_closes_open_entries_and_stores_them_exactly_once(fake_store, make_pipeline) -> None:
    crashed = make_pipeline(fake_store)
    plugin = talk(crashed, "My boat is called Wave.", "My kite is called Zephyr.")
    # the process dies here: no end_session, no idle timer, no shutdown
    for _ in range(2):  # the first start closes and stores it, the second finds nothing
        restarted = make_pipeline(fake_store)
        restarted.replay_pending()
        assert restarted.wait(30) and restarted.outbox.pending() == []
    (memory,) = fake_store.memories.values()
    assert memory.id == summary_key("acme", "alice", "orchestrator", "conv-9", plugin.opened)
    assert "Wave" in memory.content and "Zephyr" in memory.content
    assert len(fake_store.store_calls) == 1


def test_wait_includes_the_start_up_replay_still_listing(fake_store, make_pipeline, outbox_dir) -> None:
    """A shutdown right after start-up (uvicorn failing to bind its port) waited for the tasks
    scheduled so far: with the replay still listing the outbox, none, so ``wait`` said all was
    done while the replay went on to schedule a summary into the closing pipeline, and the log
    named no abandoned task. Now the replay's scheduling is part of what ``wait`` waits for."""
    LocalOutbox(outbox_dir).put(entry())
    pipeline = make_pipeline(fake_store)
    listing, release = threading.Event(), threading.Event()
    pending = pipeline.outbox.pending

    def slow_pending(*args: Any) -> list[OutboxEntry]:
        listing.set()
        release.wait(30)
        return pending(*args)

    pipeline.outbox.pending = slow_pending
    pipeline.start_replay()
    assert listing.wait(10)
    assert not pipeline.wait(timeout=0.05) and pipeline.replaying  # it has not scheduled what it found yet
    release.set()
    assert pipeline.wait(30) and pipeline.outbox.pending() == [] and not pipeline.replaying
    assert [m.conversation_id for m in fake_store.memories.values()] == ["conv-1"]


def test_wait_called_as_the_replay_thread_is_being_started_waits_for_it(
    fake_store, make_pipeline, outbox_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start_replay`` published its thread (for ``wait``) before starting it: a ``wait`` in
    between (a SIGTERM's shutdown at start-up) joined a thread not yet started, RuntimeError
    'cannot join thread before it is started'. It now waits for the replay."""
    LocalOutbox(outbox_dir).put(entry())
    pipeline = make_pipeline(fake_store)
    real_start = threading.Thread.start
    outcomes: list[object] = []

    def waits(timeout: float) -> None:
        try:
            outcomes.append(pipeline.wait(timeout=timeout))
        except Exception as exc:  # noqa: BLE001 - what the test looks for
            outcomes.append(exc)

    waiter = threading.Thread(target=waits, args=(30,))

    def start(thread: threading.Thread) -> None:
        if thread.name == "memory-outbox-replay":  # a wait from another thread, just before it starts
            real_start(waiter)
            waiter.join(0.2)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    pipeline.start_replay()
    waiter.join(30)
    assert outcomes == [True]
    assert [m.conversation_id for m in fake_store.memories.values()] == ["conv-1"]


def test_replay_of_an_open_entry_already_stored_does_not_duplicate(fake_store, make_pipeline, outbox_dir) -> None:
    e = entry(open=True)
    LocalOutbox(outbox_dir).put(e)
    fake_store.store(Scope("alice", "acme", "orchestrator"), "old", conversation_id="conv-1", key=e.key)
    pipeline = make_pipeline(fake_store)
    assert pipeline.replay_pending() == 1 and pipeline.metrics["closed_at_replay"] == 1
    assert pipeline.wait(30)
    assert list(fake_store.memories) == [e.key] and fake_store.memories[e.key].content == "My budget is 2M."


def test_an_exhausted_entry_whose_conversation_went_on_is_left_for_its_end(fake_store, make_pipeline) -> None:
    failing_then_ok(fake_store, failures=2)
    pipeline = make_pipeline(fake_store, retry=FAST_SWEEP)
    pipeline.end_conversation(entry(text="I own a cat."))
    assert pipeline.wait(30) and wait_until(lambda: pipeline.waiting == 1)
    pipeline.checkpoint(entry(text="I own a cat. And a dog."))  # the same conversation goes on
    assert pipeline.flush(30)
    assert wait_until(lambda: pipeline.sweep() == 1) and pipeline.wait(30)
    assert fake_store.memories == {} and pipeline.waiting == 0  # the live conversation was not summarized
    (left,) = pipeline.outbox.pending()
    assert left.open and left.transcript[0]["text"] == "I own a cat. And a dog."


def test_a_checkpoint_during_the_summary_of_its_ended_entry_is_kept(fake_store, make_pipeline) -> None:
    slow = GatedSummarizer()
    started, gate = slow.started, slow.gate
    pipeline = make_pipeline(fake_store, slow)
    pipeline.end_conversation(entry(text="first part."))
    assert started.wait(30)
    pipeline.checkpoint(entry(text="first part. second part."))  # the conversation went on
    assert pipeline.flush(30)
    gate.set()
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()
    assert memory.content == "first part."  # what was ended is stored ...
    (left,) = pipeline.outbox.pending()  # ... and the newer checkpoint survives for the next start
    assert left.open and left.transcript[0]["text"] == "first part. second part."


def test_an_end_never_discards_a_newer_checkpoint_queued_before_it(fake_store, make_pipeline) -> None:
    """A turn answered while its conversation's end was being written (the plugin writes an end
    off its lock) queues a checkpoint longer than the closed entry. The closed entry discarded
    every queued checkpoint of its conversation: that turn was in no outbox entry. Only a
    checkpoint the closed entry supersedes (no longer than it) is discarded now."""
    slow = GatedSummarizer()
    pipeline = make_pipeline(fake_store, slow, checkpoint_interval=3600.0)  # queued, not yet written
    ended = entry(text="first part.")
    went_on = dataclasses.replace(ended, transcript=[*ended.transcript, *entry(text="second part.").transcript])
    pipeline.checkpoint(went_on)
    pipeline.end_conversation(ended)
    assert slow.started.wait(30)
    assert pipeline.flush(30)
    slow.gate.set()
    assert pipeline.wait(30)
    (memory,) = fake_store.memories.values()
    assert memory.content == "first part."  # what was ended is stored ...
    (left,) = pipeline.outbox.pending()  # ... and the turn answered meanwhile is in the outbox
    assert left.open and [t["text"] for t in left.transcript if t["role"] == "user"] == ["first part.", "second part."]


def test_an_end_discards_the_checkpoints_it_supersedes(fake_store, make_pipeline) -> None:
    pipeline = make_pipeline(fake_store, checkpoint_interval=3600.0)
    pipeline.checkpoint(entry(text="first part."))
    pipeline.end_conversation(entry(text="first part."))  # the same transcript, closed
    assert pipeline.flush(30) and pipeline.wait(30)
    assert pipeline.outbox.pending() == [] and pipeline.metrics["checkpoints"] == 0


def test_a_configuration_error_is_dead_lettered_and_logged_with_its_message(
    fake_store, make_pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A redeploy with another embedder: the tenant's index exists with the old dimension. On main
    the dead letter and the log said only ``ConfigurationError``, not which mismatch."""
    from memory.errors import ConfigurationError
    from memory.index.local import LocalIndex

    LocalIndex(tmp_path, "memory-acme", 384).ensure()
    with pytest.raises(ConfigurationError) as mismatch:
        LocalIndex(tmp_path, "memory-acme", 1024).ensure()
    raise_first(fake_store, mismatch.value)
    pipeline = make_pipeline(fake_store)
    with caplog.at_level(logging.WARNING, logger="memory.pipeline.background"):
        pipeline.end_conversation(entry())
        assert pipeline.wait(30)
    expected = "ConfigurationError: index 'memory-acme' exists with dimension 384, but 1024 was requested"
    assert [d.reason for d in pipeline.outbox.dead_letters(None)] == [expected]
    assert pipeline.metrics["dead_lettered_ConfigurationError"] == 1
    dead_lines = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert len(dead_lines) == 1 and expected in dead_lines[0]


def test_other_errors_are_dead_lettered_and_logged_by_type_only(
    fake_store, make_pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    """Other errors' texts may quote request data: only the type is recorded."""
    from memory.errors import ValidationError

    raise_first(fake_store, ValidationError("metadata 'text' too long: My budget is 2M."))
    pipeline = make_pipeline(fake_store)
    with caplog.at_level(logging.DEBUG, logger="memory.pipeline.background"):
        pipeline.end_conversation(entry())
        assert pipeline.wait(30)
    assert [d.reason for d in pipeline.outbox.dead_letters(None)] == ["ValidationError"]
    assert caplog.records and not any("budget" in r.getMessage() for r in caplog.records)


def test_a_kms_key_the_index_cannot_use_is_dead_lettered_as_a_key_fault(fake_store, make_pipeline) -> None:
    """S3 Vectors answers a disabled key 400 ``KmsDisabledException``: on main the dead letter
    (and ``outbox list``) said ``ValidationError``, as if the conversation were invalid."""
    from botocore.exceptions import ClientError

    from memory.aws import translate_error

    disabled = ClientError({"Error": {"Code": "KmsDisabledException", "Message": "The specified key is disabled."},
                            "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutVectors")
    raise_first(fake_store, translate_error(disabled, "s3vectors put_vectors memory-acme"))
    pipeline = make_pipeline(fake_store)
    pipeline.end_conversation(entry())
    assert pipeline.wait(30)
    [letter] = pipeline.outbox.dead_letters(None)
    assert letter.reason.startswith("ConfigurationError: s3vectors put_vectors memory-acme: KmsDisabledException")


QUEUED_AT_EXIT = """
import sys
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.summarizer import Summarizer

pipeline = SummaryPipeline(object(), LocalOutbox(sys.argv[1]), Summarizer(), checkpoint_interval=60.0)
pipeline.checkpoint(OutboxEntry("acme", "alice", "assistant", "conv-2",
                                [{"role": "user", "text": "Where did I move to?"}, {"role": "assistant", "text": "Lisbon."}]))
"""


def test_checkpoints_queued_when_the_interpreter_exits_are_written(tmp_path: Path) -> None:
    """A script (the README's library example) that answers a turn and ends without ending the
    conversation or shutting the pipeline down: its checkpoint was queued for the writer, a daemon
    thread stopped without a word at exit, so the turn was in no outbox entry for a later replay
    to adopt. The queued checkpoints are written when the interpreter exits."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", QUEUED_AT_EXIT, str(tmp_path / "outbox")], timeout=120)
    assert child.returncode == 0
    (left,) = LocalOutbox(tmp_path / "outbox").pending()
    assert left.open and left.conversation_id == "conv-2"


REFUSED_AT_EXIT = """
import atexit, sys, time

started = []
atexit.register(lambda: print(f"exit flush took {time.monotonic() - started[0]:.2f} s", flush=True))  # runs last

from memory.errors import AccessDenied
from memory.pipeline import background
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.summarizer import Summarizer


class RefusingOutbox(LocalOutbox):
    def put(self, entry):
        raise AccessDenied("refused")


background.EXIT_FLUSH_SECONDS = 1.0
turns = [{"role": "user", "text": "Where did I move to?"}, {"role": "assistant", "text": "Lisbon."}]
outboxes = [LocalOutbox(sys.argv[1])] + [RefusingOutbox(sys.argv[1]) for _ in range(4)]
pipelines = [SummaryPipeline(object(), outbox, Summarizer(), checkpoint_interval=60.0) for outbox in outboxes]
for n, pipeline in enumerate(pipelines):
    pipeline.checkpoint(OutboxEntry("acme", "alice", "assistant", f"conv-{n}", turns))
started.append(time.monotonic())
"""


def test_the_exit_flush_of_many_pipelines_shares_one_deadline(tmp_path: Path) -> None:
    """A script holding several pipelines it never shut down, with an outbox refusing writes: each
    pipeline's exit flush waited its own ``EXIT_FLUSH_SECONDS`` in turn (N x 10 s at exit). They
    now all write at once within one deadline, and a pipeline whose outbox works still has its
    queued checkpoint written."""
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", REFUSED_AT_EXIT, str(tmp_path / "outbox")],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    took = float(child.stdout.split("exit flush took ")[1].split(" s")[0])
    assert took < 3.0, child.stdout  # one deadline (1 s), not 4 in turn
    assert [e.conversation_id for e in LocalOutbox(tmp_path / "outbox").pending()] == ["conv-0"]
