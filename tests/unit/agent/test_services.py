"""Services wiring: start replays the outbox and starts the summary sweeper, so a summary whose
retries ran out is stored without a restart while AgentCore's /ping reports HealthyBusy."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bedrock_agentcore import BedrockAgentCoreApp
from bedrock_agentcore.runtime.models import PingStatus

from agent.services import build_services
from agent.sessions import EndRetry
from agent.settings import Settings
from memory.errors import BackendUnavailable
from memory.keys import new_conversation_marker
from memory.types import Scope
from memory.pipeline.outbox import OutboxEntry
from memory.plugin.invocation import Invocation
from tests.support.busy import wait_until


class FailingThenOk:
    """Wraps a store: ``store_units`` fails ``failures`` times, recording the ping status each time."""

    def __init__(self, store: Any, failures: int, app: BedrockAgentCoreApp) -> None:
        self.store_ = store
        self.failures = failures
        self.app = app
        self.ping_seen: list[PingStatus] = []

    def store_units(self, *args: Any, **kwargs: Any) -> Any:
        self.ping_seen.append(self.app.get_current_ping_status())
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("outage")
        return self.store_.store_units(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store_, name)


def test_exhausted_summary_is_retried_in_process_while_ping_stays_busy(tmp_path: Path) -> None:
    app = BedrockAgentCoreApp()
    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model"
    )
    services = build_services(settings, on_task_start=app.add_async_task, on_task_end=app.complete_async_task)
    pipeline = services.pipeline
    assert pipeline is not None
    pipeline.retry = dataclasses.replace(
        pipeline.retry, max_attempts=2, base_delay=0.001, max_delay=0.002, sweep_base_delay=0.2, sweep_max_delay=0.2
    )
    real_store = pipeline.store
    pipeline.store = flaky = FailingThenOk(real_store, failures=4, app=app)  # two exhausted rounds
    services.start()
    try:
        pipeline.end_conversation(OutboxEntry(
            tenant_id="acme", user_id="alice", agent_name="orchestrator", conversation_id="sid-1",
            transcript=[{"role": "user", "text": "My dog is called Rex."}], opened="2025-01-01T00:00:00.000+00:00~00000001",
        ))
        deadline = time.monotonic() + 30
        while pipeline.metrics["stored"] == 0 and time.monotonic() < deadline:
            if pipeline.waiting:  # between rounds nothing is in flight, yet the app stays busy
                assert app.get_current_ping_status() == PingStatus.HEALTHY_BUSY
            time.sleep(0.01)
        assert pipeline.wait(30)
        assert flaky.ping_seen == [PingStatus.HEALTHY_BUSY] * 5 and pipeline.metrics["swept"] == 2
        assert app.get_current_ping_status() == PingStatus.HEALTHY
        (memory,) = [m for m in real_store.list(Scope("alice", "acme", "orchestrator")) if m.memory_type == "summary"]
        assert memory.conversation_id == "sid-1" and "Rex" in memory.content
        assert pipeline.outbox.pending() == []
    finally:
        services.close()


def test_start_up_makes_the_state_directory_private(tmp_path: Path) -> None:
    """A state directory left 0755 with a 0644 index: tightened at start-up; new files private too."""
    state = tmp_path / "state"
    (state / "vectors").mkdir(parents=True)
    (state / "vectors" / "memory-old.sqlite3").write_bytes(b"")
    for path, mode in ((state, 0o755), (state / "vectors", 0o755), (state / "vectors" / "memory-old.sqlite3", 0o644)):
        path.chmod(mode)
    previous = os.umask(0o022)  # not the app's umask (main sets 077): the modes must not depend on it
    try:
        services = build_services(Settings(
            auth_mode="dev", state_dir=state, model_provider="import:tests.support.scripted_model:build_echo_model"
        ))
        assert services.pipeline is not None
        services.pipeline.end_conversation(OutboxEntry(
            tenant_id="acme", user_id="alice", agent_name="orchestrator", conversation_id="sid-1",
            transcript=[{"role": "user", "text": "My dog is called Rex."}],
        ))
        assert services.pipeline.wait(30)
        services.pipeline.shutdown(wait=True)
    finally:
        os.umask(previous)
    found = {p.relative_to(state).as_posix(): stat.S_IMODE(p.lstat().st_mode) for p in state.rglob("*")}
    assert {"outbox", "vectors/memory-acme.sqlite3-wal", "dev-issuer"} <= found.keys()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert {name: mode for name, mode in found.items() if mode not in (0o700, 0o600)} == {}
    assert all(mode == 0o600 for name, mode in found.items() if (state / name).is_file())


ECHO = "import:tests.support.scripted_model:build_echo_model"


def test_start_up_refuses_a_configuration_where_every_summary_must_fail(tmp_path: Path, monkeypatch) -> None:
    import pytest

    import memory.embedders.local as local_embedder
    from memory.errors import ConfigurationError

    def no_weights() -> Any:
        raise ConfigurationError("LocalEmbedder needs the 'wordllama' package")

    with monkeypatch.context() as patch:  # no embedder
        patch.setattr(local_embedder, "_wordllama", no_weights)
        with pytest.raises(ConfigurationError, match="wordllama"):
            build_services(Settings(auth_mode="dev", state_dir=tmp_path, model_provider=ECHO))
    import memory.aws

    monkeypatch.setattr(memory.aws, "_default_session", None)  # restored after: no credential-less session leaks
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # Bedrock without credentials
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(ConfigurationError, match="credentials"):
        build_services(Settings(auth_mode="dev", state_dir=tmp_path, model_provider=ECHO, embedder="bedrock"))


def test_start_up_refuses_a_missing_s3_outbox_bucket(tmp_path: Path) -> None:
    import pytest
    from moto import mock_aws

    from memory.errors import ConfigurationError

    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider=ECHO, backend="s3vectors", vector_bucket="mem-vectors",
        tvm_role_arn="arn:aws:iam::123456789012:role/tvm", outbox_bucket="no-such-outbox",
    )
    with mock_aws(), pytest.raises(ConfigurationError, match="no-such-outbox"):
        build_services(settings)


def test_start_up_refuses_an_outbox_bucket_name_the_s3_client_cannot_send(tmp_path: Path) -> None:
    """``s3://mem-outbox`` (a URL for a name) is refused by botocore before any request: that was
    taken for an unavailable S3, the app started and every conversation end answered 503. The
    settings refuse such a name now (``test_settings``); copied past them, the services still do."""
    import pytest
    from moto import mock_aws

    from memory.errors import ValidationError

    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider=ECHO, backend="s3vectors", vector_bucket="mem-vectors",
        tvm_role_arn="arn:aws:iam::123456789012:role/tvm", outbox_bucket="mem-outbox",
    ).model_copy(update={"outbox_bucket": "s3://mem-outbox"})
    with mock_aws(), pytest.raises(ValidationError, match="outbox bucket s3://mem-outbox.*Bucket refused"):
        build_services(settings)


def test_summary_max_facts_reaches_the_summarizer(tmp_path: Path) -> None:
    echo = "import:tests.support.scripted_model:build_echo_model"
    for max_facts in (0, 7):
        services = build_services(Settings(auth_mode="dev", state_dir=tmp_path / str(max_facts), model_provider=echo,
                                           summary_max_facts=max_facts))
        assert services.pipeline is not None
        summarizer = services.pipeline.summarizer
        assert (summarizer.mode, summarizer.max_facts) == ("abstractive", max_facts)
        services.close()


def test_with_a_ttl_the_app_sweeps_expired_memories_of_the_tenants_it_serves(tmp_path: Path) -> None:
    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model",
        memory_ttl_days=1, retention_sweep_seconds=0.05,
    )
    services = build_services(settings)
    assert services.pipeline is not None
    store = services.pipeline.store
    old = store.store(Scope("alice", "acme", "orchestrator"), "My dog is called Rex.")
    kept = store.store(Scope("bob", "globex", "orchestrator"), "My cat is called Tom.")
    store.store_for("acme").clock = lambda: time.time() + 2 * 86400  # acme's memory is now 2 days old
    services.start()
    try:
        deadline = time.monotonic() + 30
        while store.list(Scope("alice", "acme", "orchestrator")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.list(Scope("alice", "acme", "orchestrator")) == []  # swept by the app itself
        assert [m.id for m in store.list(Scope("bob", "globex", "orchestrator"))] == [kept.id]
        assert old.id != kept.id and services.sweep_retention() == 0
    finally:
        services.close()


def test_the_apps_retention_sweep_purges_dead_letters_of_expired_conversations(tmp_path: Path) -> None:
    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model",
        memory_ttl_days=1,
    )
    services = build_services(settings)
    assert services.pipeline is not None
    outbox = services.pipeline.outbox
    services.pipeline.store.store(Scope("carol", "acme", "orchestrator"), "My cat is called Tom.")  # served
    two_days_ago = (datetime.now(timezone.utc) - timedelta(days=2)).isoformat()
    for user, created_at in (("alice", two_days_ago), ("bob", None)):
        letter = OutboxEntry(tenant_id="acme", user_id=user, agent_name="orchestrator", conversation_id=f"c-{user}",
                             transcript=[{"role": "user", "text": "My PIN is 4321."}], opened=new_conversation_marker())
        if created_at:
            letter = dataclasses.replace(letter, created_at=created_at)
        outbox.put(letter)
        outbox.dead_letter(letter, "AccessDenied")
    try:
        services.sweep_retention()
        assert [d.entry.user_id for d in outbox.dead_letters("acme")] == ["bob"]
    finally:
        services.close()


def test_without_a_ttl_no_retention_sweep_runs(tmp_path: Path) -> None:
    settings = Settings(auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model")
    services = build_services(settings)
    services.start()
    try:
        assert services._retention is None and services.sweep_retention() == 0
    finally:
        services.close()


def left_by_a_dead_process(settings: Settings) -> OutboxEntry:
    """A closed entry in the app's outbox, as a previous process that died would leave it."""
    left = OutboxEntry(
        tenant_id="acme", user_id="alice", agent_name="orchestrator", conversation_id="sid-0",
        transcript=[{"role": "user", "text": "My cat is called Tom."}], opened="2025-01-01T00:00:00.000+00:00~00000000",
    )
    first = build_services(settings)
    assert first.pipeline is not None
    first.pipeline.outbox.put(left)
    first.pipeline.shutdown()
    return left


class UnlistableOutbox:
    """Wraps an outbox whose listing fails (an S3 outage, throttled STS calls for its tenants)."""

    def __init__(self, outbox: Any) -> None:
        self.outbox_ = outbox

    def pending(self, tenant_id: str | None = None) -> list[OutboxEntry]:
        raise BackendUnavailable("outbox listing failed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox_, name)


def test_an_outbox_that_cannot_be_listed_at_start_up_does_not_stop_the_app(tmp_path: Path) -> None:
    """The start-up replay is best effort: on AgentCore every session starts a process, and one
    that cannot list the outbox (an outage, or one tenant's entries unreadable) must still serve
    its own session; what is pending stays in the outbox for the next start."""
    settings = Settings(auth_mode="dev", state_dir=tmp_path, model_provider=ECHO)
    left = left_by_a_dead_process(settings)

    services = build_services(settings)
    pipeline = services.pipeline
    assert pipeline is not None
    outbox = pipeline.outbox
    pipeline.outbox = UnlistableOutbox(outbox)
    services.start()  # on main: BackendUnavailable, i.e. the app's lifespan fails and it never serves
    try:
        assert services._reaper is not None and services._reaper.is_alive()
        pipeline.end_conversation(dataclasses.replace(left, conversation_id="sid-1", opened=left.opened[:-1] + "1"))
        assert pipeline.wait(30) and pipeline.metrics["stored"] == 1  # its own conversations are stored
    finally:
        services.close()
    assert [e.conversation_id for e in outbox.pending()] == ["sid-0"]  # kept for the next start

    restarted = build_services(settings)
    assert restarted.pipeline is not None
    restarted.start()  # the replay runs in the background
    try:
        deadline = time.monotonic() + 30
        while restarted.pipeline.outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert restarted.pipeline.wait(30) and restarted.pipeline.outbox.pending() == []
    finally:
        restarted.close()


class GatedListing:
    """Wraps an outbox whose listing is held until ``go`` is set (a backlog of thousands of
    entries, throttled STS calls for each tenant...)."""

    def __init__(self, outbox: Any) -> None:
        self.outbox_ = outbox
        self.listing, self.go = threading.Event(), threading.Event()

    def pending(self, tenant_id: str | None = None) -> list[OutboxEntry]:
        self.listing.set()
        assert self.go.wait(60)
        return self.outbox_.pending(tenant_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outbox_, name)


def test_the_app_serves_while_the_start_up_replay_lists_the_outbox(tmp_path: Path) -> None:
    """Start-up does not wait for the outbox listing (on AgentCore each session starts a process
    and the outbox holds every live session's checkpoint); /ping is HealthyBusy until the
    replay has scheduled what it found, and the entries it finds are stored."""
    app = BedrockAgentCoreApp()
    settings = Settings(auth_mode="dev", state_dir=tmp_path, model_provider=ECHO)
    left = left_by_a_dead_process(settings)

    services = build_services(settings, on_task_start=app.add_async_task, on_task_end=app.complete_async_task)
    pipeline = services.pipeline
    assert pipeline is not None
    pipeline.outbox = gated = GatedListing(pipeline.outbox)
    starter = threading.Thread(target=services.start)
    starter.start()
    try:
        starter.join(20)
        assert not starter.is_alive()  # on main: start() waits for the listing, so the app never serves
        assert gated.listing.wait(20) and app.get_current_ping_status() == PingStatus.HEALTHY_BUSY
        pipeline.end_conversation(dataclasses.replace(left, conversation_id="sid-1", opened=left.opened[:-1] + "1"))
        assert wait_until(lambda: pipeline.metrics["stored"] == 1)  # served meanwhile
        assert app.get_current_ping_status() == PingStatus.HEALTHY_BUSY  # the replay is not done
        assert not pipeline.wait(0.05)  # which ``wait`` waits for too
        gated.go.set()
        deadline = time.monotonic() + 30
        while app.get_current_ping_status() != PingStatus.HEALTHY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipeline.wait(30) and pipeline.metrics["stored"] == 2 and gated.outbox_.pending() == []
    finally:
        gated.go.set()
        starter.join(60)
        services.close()


def test_the_retrieval_deadline_setting_reaches_every_plugin_of_a_session(tmp_path: Path) -> None:
    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model",
        retrieval_timeout_seconds=0.75,
    )
    services = build_services(settings)
    try:
        conversation = services.registry._factory("session-1", None)  # what the registry builds per session
        assert conversation.plugins and {p.retrieval_timeout for p in conversation.plugins} == {0.75}
    finally:
        services.close()


def test_a_session_released_just_after_the_turn_deadline_is_ended_not_abandoned(tmp_path: Path, caplog) -> None:
    """uvicorn cancels a plain request still running at the turn share of the shutdown budget,
    which releases its session moments later. The registry had given up on it at that same
    instant: the session was left unended, its checkpoint waiting the orphan delay at the next
    start. It is now waited for until the release share, and ended."""
    import logging

    from agent.shutdown import TURN_SHARE

    services = build_services(Settings(auth_mode="dev", state_dir=tmp_path, model_provider=ECHO,
                                       shutdown_grace_seconds=4.0))
    session = services.registry.acquire("plain-1", ("acme", "ann"))  # a request in flight
    services.begin_close()

    def cancelled_by_uvicorn() -> None:
        while services.deadline.remaining(TURN_SHARE) > 0:
            time.sleep(0.01)
        services.registry.release(session)

    releaser = threading.Thread(target=cancelled_by_uvicorn)
    releaser.start()
    with caplog.at_level(logging.INFO, logger="agent.sessions"):
        services.close()
    releaser.join()
    assert "not ended" not in caplog.text
    assert [r for r in caplog.records if r.getMessage() == "session ended" and r.__dict__.get("session_id") == "plain-1"]


def test_an_idle_end_refused_by_the_outbox_is_stored_once_the_outbox_is_back_without_a_new_start(
    tmp_path: Path,
) -> None:
    """The idle end of a session whose closed entry the outbox refused was logged and the session
    dropped: its conversation was summarized only by a later process's replay of its checkpoint
    (hours later on AgentCore, or never once the microVM is gone with a local outbox). The end is
    now tried again with backoff by the reaper: the entry is written and summarized in process."""
    import asyncio

    settings = Settings(
        auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model",
        idle_timeout_seconds=0.2, reap_interval_seconds=0.05, checkpoint_interval_seconds=0,
    )  # fmt: skip
    app = BedrockAgentCoreApp()
    services = build_services(settings, on_task_start=app.add_async_task, on_task_end=app.complete_async_task)
    pipeline = services.pipeline
    assert pipeline is not None
    services.registry.end_retry = EndRetry(base_seconds=0.1, max_delay_seconds=0.2, give_up_after_seconds=30)
    outbox, refused = pipeline.outbox, []
    put = outbox.put

    def refusing_put(entry: OutboxEntry) -> Any:
        if not entry.open and len(refused) < 3:  # the closed entry: the outbox is down for a while
            refused.append(app.get_current_ping_status())
            raise BackendUnavailable("outbox down")
        return put(entry)

    outbox.put = refusing_put  # type: ignore[method-assign]
    with services.registry.open("sid-1", ("acme", "alice")) as session:
        asyncio.run(session.conversation.ask("My dog is called Rex.", Invocation("alice", "sid-1", "acme").to_state()))
    services.start()
    try:
        assert wait_until(lambda: pipeline.metrics["stored"] == 1, timeout=15), (refused, pipeline.metrics)
        assert len(services.registry) == 0
        # busy while retried (AgentCore keeps the microVM), and Healthy once stored
        assert refused == [PingStatus.HEALTHY, PingStatus.HEALTHY_BUSY, PingStatus.HEALTHY_BUSY]
        assert pipeline.wait(30) and pipeline.outbox.pending() == []
        assert wait_until(lambda: app.get_current_ping_status() == PingStatus.HEALTHY, timeout=10)
        (memory,) = [m for m in pipeline.store.list(Scope("alice", "acme", "orchestrator")) if m.memory_type == "summary"]
        assert memory.conversation_id == "sid-1" and "Rex" in memory.content
    finally:
        services.close()
