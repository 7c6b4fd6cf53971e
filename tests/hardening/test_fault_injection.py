"""Fault injection: S3 Vectors throttling and 5xx, STS failure, Bedrock embedding timeout,
disk full / read-only state for the outbox and the local index, and a server killed while a
summary is in flight or in the middle of a conversation. Turns still answer, accepted
conversations (and every answered turn) are stored after recovery, exactly once.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import botocore.retries.adaptive
import botocore.retries.standard
import httpx
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from starlette.testclient import TestClient
from strands import Agent

from agent.app import create_app
from agent.services import build_services
from agent.settings import Settings
from auth.dev_issuer import DevIssuer
from memory.aws import DEFAULT_MAX_ATTEMPTS, make_client
from memory.pipeline.background import RetryPolicy, SummaryPipeline
from memory.embedders.bedrock import BedrockEmbedder
from memory.embedders.local import LocalEmbedder
from memory.errors import BackendUnavailable
from memory.index.local import LocalIndex
from memory.types import Scope
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.outbox_s3 import S3Outbox
from tests.support.busy import wait_until
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.invocation import Invocation
from memory.stores.multi_tenant import MultiTenantStore
from memory.pipeline.summarizer import Summarizer
from memory.stores.tvm import TokenVendingMachine
from tests.e2e.server import SESSION_HEADER, AgentServer
from tests.hardening.conftest import memories_of, read_store
from tests.support.moto_s3vectors import multi_tenant_store
from tests.support.s3vectors_double import install_s3vectors_double
from tests.support.scripted_model import ScriptedModel

BUCKET = "hardening-bucket"
SCOPE = Scope(user_id="alice", tenant_id="acme", agent_name="orchestrator")
BASE = "You are the orchestrator.\n{memory_context}"
FAST_RETRY = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class Faults:
    """A botocore ``before-send`` hook answering chosen operations with an error while on."""

    def __init__(self, status: int, code: str) -> None:
        self.status, self.code = status, code
        self.on = True
        self.injected: dict[str, int] = {}

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        if not self.on:
            return None
        operation = event_name.rsplit(".", 1)[-1]
        self.injected[operation] = self.injected.get(operation, 0) + 1
        body = json.dumps({"message": "injected fault"}).encode()
        headers = {"x-amzn-ErrorType": self.code, "Content-Type": "application/json"}
        if self.code in ("Throttling", "ServiceUnavailable"):  # STS speaks XML
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{self.code}</Code>"
                f"<Message>injected</Message></Error></ErrorResponse>"
            ).encode()
            headers = {"Content-Type": "text/xml"}
        return AWSResponse(request.url, self.status, headers, _Raw(body))


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore still retries every attempt, just without sleeping between them."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    # adaptive mode's client-side rate limiter would also sleep after throttling responses
    monkeypatch.setattr(botocore.retries.adaptive.ClientRateLimiter, "on_sending_request", lambda self, **kw: None)


def turn(store: Any, pipeline: SummaryPipeline | None, prompt: str, conversation: str, **state: Any) -> tuple[str, MemoryPlugin, ScriptedModel]:
    model = ScriptedModel(default_reply="ok")
    plugin = MemoryPlugin(store, pipeline=pipeline)
    agent = Agent(model=model, name="orchestrator", system_prompt=BASE, plugins=[plugin], callback_handler=None)
    result = agent(prompt, invocation_state={**Invocation("alice", conversation, "acme").to_state(), **state})
    return str(result).strip(), plugin, model


@pytest.mark.parametrize(("status", "code"), [(429, "ThrottlingException"), (503, "ServiceUnavailableException"),
                                              (500, "InternalServerException")])
def test_s3vectors_faults_degrade_then_replay_exactly_once(monkeypatch, tmp_path: Path, status: int, code: str) -> None:
    from moto import mock_aws

    install_s3vectors_double(monkeypatch)
    with mock_aws():
        client, store = multi_tenant_store(BUCKET, LocalEmbedder())
        store.store(SCOPE, "An older fact: my budget is 2M dollars.", conversation_id="c0")
        pipeline = SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(ScriptedModel()), retry=FAST_RETRY)
        faults = Faults(status, code)
        client.meta.events.register("before-send.s3vectors", faults)
        try:
            with pytest.raises(BackendUnavailable):
                store.retrieve(SCOPE, "what is my budget?")
            assert faults.injected["QueryVectors"] == 1 + DEFAULT_MAX_ATTEMPTS  # retried by botocore, then surfaced
            answer, plugin, model = turn(store, pipeline, "My project deadline is in March.", "c1", end_session=True)
            assert answer == "ok" and plugin.metrics["retrieval_failures"] == 1  # the turn answered without memory
            assert pipeline.wait(30)
            assert len(pipeline.outbox.pending()) == 1 and pipeline.metrics["exhausted"] == 1  # kept, not lost

            faults.on = False  # the backend recovers
            assert pipeline.replay_pending() == 1 and pipeline.wait(30)
            assert pipeline.replay_pending() == 0
            memories = [m for m in store.list(SCOPE) if m.memory_type == "summary"]
            assert sorted(m.conversation_id for m in memories) == ["c0", "c1"]  # stored once, no duplicate
            assert any("deadline is in March" in m.content for m in memories)
        finally:
            pipeline.shutdown()


def test_s3vectors_service_quota_exceeded_is_dead_lettered_at_once_naming_it(monkeypatch, tmp_path: Path) -> None:
    """S3 Vectors' ServiceQuotaExceededException (HTTP 402 in botocore's model: e.g. an index at its
    vector quota) is fixed by the operator (a quota increase, another index), not by a retry: the
    entry is dead-lettered at once, its reason naming the quota (on main: a generic
    MemoryLibraryError, retried for ``max_busy_seconds`` with /ping busy, then dead-lettered as
    "MemoryLibraryError")."""
    import botocore.session
    from moto import mock_aws

    shape = botocore.session.get_session().get_service_model("s3vectors").shape_for("ServiceQuotaExceededException")
    assert shape.metadata["error"]["httpStatusCode"] == 402

    install_s3vectors_double(monkeypatch)
    with mock_aws():
        client, store = multi_tenant_store(BUCKET, LocalEmbedder())
        store.store(SCOPE, "An older fact: my budget is 2M dollars.", conversation_id="c0")  # the index exists
        faults = Faults(402, "ServiceQuotaExceededException")
        client.meta.events.register("before-send.s3vectors.PutVectors", faults)
        pipeline = SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(ScriptedModel()), retry=FAST_RETRY)
        try:
            answer, _, _ = turn(store, pipeline, "My project deadline is in March.", "c1", end_session=True)
            assert answer == "ok" and pipeline.wait(30)
            (letter,) = pipeline.outbox.dead_letters()
            assert "ServiceQuotaExceededException" in letter.reason and faults.injected == {"PutVectors": 1}
            assert pipeline.outbox.pending() == []
        finally:
            pipeline.shutdown()


def test_a_query_stalled_in_botocore_costs_the_turn_its_memories_not_the_clients_retries(monkeypatch) -> None:
    """A stalled S3 Vectors endpoint: every QueryVectors attempt waits for its read timeout (10 s)
    and botocore tries 5 times, about a minute; the first turn goes on without memory at the
    plugin's retrieval deadline while the query still hangs, and the abandoned read ends when
    botocore gives up (on main the turn waited for all of it)."""
    from moto import mock_aws

    install_s3vectors_double(monkeypatch)
    with mock_aws():
        client, store = multi_tenant_store(BUCKET, LocalEmbedder())
        store.store(SCOPE, "An older fact: my budget is 2M dollars.", conversation_id="c0")
        stalled, attempts = threading.Event(), []

        def stall(request: Any, **_: Any) -> None:
            attempts.append(request.url)
            stalled.wait(60)  # the read timeout, shortened by the test's release
            raise ReadTimeoutError(endpoint_url=request.url)

        client.meta.events.register("before-send.s3vectors.QueryVectors", stall)
        model = ScriptedModel(default_reply="ok")
        # 2 s: the embedding and the query must reach botocore first, also on a loaded machine
        # (at 0.5 s a busy 2-core CI once had no attempt yet when the deadline passed)
        plugin = MemoryPlugin(store, pipeline=None, retrieval_timeout=2.0)
        agent = Agent(model=model, name="orchestrator", system_prompt=BASE, plugins=[plugin], callback_handler=None)
        answers: list[str] = []
        state = Invocation("alice", "c1", "acme").to_state()
        worker = threading.Thread(target=lambda: answers.append(str(agent("my budget?", invocation_state=state))), daemon=True)
        try:
            worker.start()
            worker.join(20)
            assert [a.strip() for a in answers] == ["ok"], "the turn waited for the stalled query"
            assert len(attempts) == 1 and not stalled.is_set()  # answered during the first attempt's stall
            assert plugin.metrics["retrieval_failures"] == 1 and plugin.used_memory_ids == []
        finally:
            stalled.set()
        assert wait_until(lambda: len(attempts) == 1 + DEFAULT_MAX_ATTEMPTS, timeout=10)  # the abandoned read ended


def test_sts_failure_is_retried_later_not_cached(monkeypatch) -> None:
    from moto import mock_aws

    with mock_aws():
        sts = make_client("sts", region="us-east-1")
        faults = Faults(503, "ServiceUnavailable")
        sts.meta.events.register("before-send.sts", faults)
        tvm = TokenVendingMachine("arn:aws:iam::123456789012:role/tvm", region_name="us-east-1",
                                  sts_client_factory=lambda: sts)
        for _ in range(2):
            with pytest.raises(BackendUnavailable):
                tvm.credentials_for("acme")
        assert faults.injected["AssumeRole"] == 2 * (1 + DEFAULT_MAX_ATTEMPTS)  # retried each time; not cached
        faults.on = False
        first = tvm.credentials_for("acme")
        assert tvm.credentials_for("acme") is first  # success is cached
        assert faults.injected["AssumeRole"] == 2 * (1 + DEFAULT_MAX_ATTEMPTS)


def test_bedrock_embedding_timeout_still_answers(tmp_path: Path) -> None:
    client = make_client("bedrock-runtime", region="us-east-1")
    calls = []

    def timeout(request: Any, **_: Any) -> None:
        calls.append(request.url)
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.bedrock-runtime", timeout)
    embedder = BedrockEmbedder(client, dimension=256)
    store = MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=embedder)
    answer, plugin, _ = turn(store, None, "what is my budget?", "c1")
    assert answer == "ok" and plugin.metrics["retrieval_failures"] == 1 and plugin.used_memory_ids == []
    assert len(calls) == 1 + DEFAULT_MAX_ATTEMPTS  # the timeout was retried before giving up


def summaries_embedded_by_nova(tmp_path: Path, faults: Faults) -> tuple[MultiTenantStore, SummaryPipeline]:
    """A local store embedding with Bedrock (Nova's answer, 256 dimensions, unless ``faults``
    answers first) and a summary pipeline over it with fast retries."""
    client = make_client("bedrock-runtime", region="us-east-1")

    def nova(request: Any, **kwargs: Any) -> AWSResponse:
        answered = faults(request, **kwargs)
        if answered is not None:
            return answered
        body = json.dumps({"embeddings": [{"embeddingType": "TEXT", "embedding": [1.0] + [0.0] * 255}]}).encode()
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, io.BytesIO(body))

    client.meta.events.register("before-send.bedrock-runtime", nova)
    store = MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=BedrockEmbedder(client, dimension=256))
    return store, SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(ScriptedModel()), retry=FAST_RETRY)


def test_bedrock_service_quota_exceeded_is_retried_not_dead_lettered(tmp_path: Path) -> None:
    """Bedrock Runtime's ServiceQuotaExceededException (HTTP 400) says "You can resubmit your
    request later" (botocore's service model): a summary whose embedding meets it stays in the
    outbox and is stored once the quota allows (on main: a ValidationError, dead-lettered at once)."""
    import botocore.session

    documented = botocore.session.get_session().get_service_model("bedrock-runtime").shape_for(
        "ServiceQuotaExceededException")
    assert documented.metadata["error"]["httpStatusCode"] == 400
    assert "resubmit your request later" in documented.documentation

    faults = Faults(400, "ServiceQuotaExceededException")
    store, pipeline = summaries_embedded_by_nova(tmp_path, faults)
    try:
        answer, _, _ = turn(store, pipeline, "My project deadline is in March.", "c1", end_session=True)
        assert answer == "ok" and pipeline.wait(30)
        assert pipeline.metrics["dead_lettered"] == 0 and pipeline.outbox.dead_letters() == []
        assert len(pipeline.outbox.pending()) == 1 and pipeline.metrics["exhausted"] == 1  # kept for a retry

        faults.on = False  # the quota allows requests again
        assert pipeline.replay_pending() == 1 and pipeline.wait(30)
        assert [m.conversation_id for m in store.list(SCOPE) if m.memory_type == "summary"] == ["c1"]
    finally:
        pipeline.shutdown()


def test_bedrock_runtimes_only_403_is_access_denied_dead_lettered_at_once_then_revived(tmp_path: Path) -> None:
    """botocore's ``bedrock-runtime`` model has one 403, ``AccessDeniedException`` ("you do not
    have sufficient permissions"): the Marketplace agreement still being created, which AWS's
    troubleshooting page lists as ``MPAgreementBeingCreated`` ("try again after 15 minutes"), has
    no code of its own, so no 403 is mapped as transient (docs/service-facts.md). A summary that
    meets it is dead-lettered at once; ``outbox retry`` (``revive``) stores it once allowed."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    forbidden = [name for name in model.error_shapes if name.metadata["error"]["httpStatusCode"] == 403]
    assert [shape.name for shape in forbidden] == ["AccessDeniedException"]
    assert "sufficient permissions" in forbidden[0].documentation
    assert not [s.name for s in model.error_shapes if "Agreement" in s.name or "Marketplace" in s.name]

    faults = Faults(403, "AccessDeniedException")
    store, pipeline = summaries_embedded_by_nova(tmp_path, faults)
    try:
        answer, _, _ = turn(store, pipeline, "My project deadline is in March.", "c1", end_session=True)
        assert answer == "ok" and pipeline.wait(30)
        (letter,) = pipeline.outbox.dead_letters()
        assert letter.reason.startswith("AccessDenied") and pipeline.metrics["failed_attempts"] == 1
        assert faults.injected["InvokeModel"] == 2  # the turn's retrieval, then the summary: not retried

        faults.on = False  # the subscription (or the policy) is in place
        assert pipeline.outbox.revive(letter.entry.entry_id, letter.entry.tenant_id) is not None
        assert pipeline.replay_pending() == 1 and pipeline.wait(30)
        assert [m.conversation_id for m in store.list(SCOPE) if m.memory_type == "summary"] == ["c1"]
    finally:
        pipeline.shutdown()


def test_a_start_up_replay_stalled_on_sts_is_busy_no_longer_than_the_bound(tmp_path: Path) -> None:
    """The start-up replay assumes each tenant's role to list its prefix; with STS timing out
    (each call ~45 s after botocore's retries, tenant after tenant) it kept /ping HealthyBusy
    until the last tenant was tried, past ``max_busy_seconds`` (on main: busy until it ends)."""
    from moto import mock_aws

    with mock_aws():
        own = make_client("s3", region="us-east-1")
        own.create_bucket(Bucket="outbox-bucket")
        for tenant in ("acme", "globex"):
            own.put_object(Bucket="outbox-bucket", Key=f"outbox/{tenant}/pending/x.json", Body=b"{}")
        sts = make_client("sts", region="us-east-1")
        stalled, calls = threading.Event(), []

        def read_timeout(request: Any, **_: Any) -> None:
            calls.append(request.url)
            stalled.wait(30)  # what a read timeout waits, until the test lets it go
            raise ReadTimeoutError(endpoint_url=request.url)

        sts.meta.events.register("before-send.sts", read_timeout)
        tvm = TokenVendingMachine("arn:aws:iam::123456789012:role/tvm", region_name="us-east-1",
                                  sts_client_factory=lambda: sts)
        outbox = S3Outbox(lambda tenant: own if tenant is None else tvm.client_for(tenant, "s3"), "outbox-bucket",
                          lister=own)
        ended: list[str] = []
        pipeline = SummaryPipeline(
            MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=LocalEmbedder()), outbox,
            Summarizer(ScriptedModel()), retry=RetryPolicy(max_busy_seconds=0.2),
            on_task_start=lambda name: name, on_task_end=ended.append,
        )
        try:
            pipeline.start_replay()
            assert wait_until(lambda: calls, timeout=10)  # the replay waits on the first tenant's STS call
            assert wait_until(lambda: ended == ["memory-outbox-replay"], timeout=10)  # busy ended at the bound
            assert not stalled.is_set() and len(calls) == 1  # while the replay is still stalled
            stalled.set()
            replays = [t for t in threading.enumerate() if t.name == "memory-outbox-replay"]
            for thread in replays:
                thread.join(30)
            assert len(calls) == 2 * (1 + DEFAULT_MAX_ATTEMPTS)  # both tenants tried, retried by botocore
            assert ended == ["memory-outbox-replay"]  # ended once
        finally:
            stalled.set()
            pipeline.shutdown()


@pytest.mark.parametrize(("status", "code", "reason"), [(403, "AccessDeniedException", "AccessDenied"),
                                                        (404, "ResourceNotFoundException", "NotFound")])
def test_a_summary_model_refused_or_missing_is_dead_lettered_at_once_saying_so(
    monkeypatch, tmp_path: Path, status: int, code: str, reason: str
) -> None:
    """The summarizer's Bedrock model refusing the app (model access not granted: 403) or not
    found (wrong model id or region: 404) fails every attempt alike, as the embedder's does: the
    entry is dead-lettered at once, its reason naming the refusal (on main: retried for
    ``max_rounds`` rounds, then dead-lettered as "SummarizationError", whatever the cause)."""
    from agent.chat_models import build_model

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    model = build_model("bedrock", model_id="us.anthropic.claude-sonnet-4-5", region="us-east-1")
    faults = Faults(status, code)
    model.client.meta.events.register("before-send.bedrock-runtime", faults)
    store = MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=LocalEmbedder())
    pipeline = SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(model), retry=FAST_RETRY)
    try:
        answer, _, _ = turn(store, pipeline, "My project deadline is in March.", "c1", end_session=True)
        assert answer == "ok" and pipeline.wait(30)
        (letter,) = pipeline.outbox.dead_letters()
        assert letter.reason == reason and faults.injected == {"ConverseStream": 1}  # one attempt, no retry
        assert pipeline.outbox.pending() == []
    finally:
        pipeline.shutdown()


# --- disk full / read-only state directory, through the app ------------------------------


@pytest.fixture
def app_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, Any], DevIssuer]]:
    issuer = DevIssuer(tmp_path / "dev-issuer")
    settings = Settings(auth_mode="dev", state_dir=tmp_path, model_provider="import:tests.support.scripted_model:build_echo_model")
    holder: dict[str, Any] = {}

    def factory(settings: Settings, **hooks: Any) -> Any:
        holder["services"] = build_services(settings, **hooks)
        holder["services"].pipeline.retry = FAST_RETRY
        return holder["services"]

    with TestClient(create_app(settings, services_factory=factory)) as client:
        yield client, holder, issuer


def _headers(issuer: DevIssuer, session: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint('acme', 'alice')}", SESSION_HEADER: session}


def _raise(code: int) -> Callable[..., None]:
    def fail(*_: Any, **__: Any) -> None:
        raise OSError(code, "injected")
    return fail


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_outbox_write_failure_is_reported_and_nothing_is_lost(app_client, monkeypatch, tmp_path: Path, code: int) -> None:
    client, holder, issuer = app_client
    session = f"s-{uuid.uuid4()}"
    assert client.post("/invocations", json={"prompt": "My dog is called Rex."}, headers=_headers(issuer, session)).status_code == 200
    with monkeypatch.context() as patch:
        patch.setattr(LocalOutbox, "put", _raise(code))
        failed = client.post("/invocations", json={"end_session": True}, headers=_headers(issuer, session))
        assert failed.status_code == 503 and failed.json()["error"] == "unavailable"
        other = client.post("/invocations", json={"prompt": "hello"}, headers=_headers(issuer, f"s-{uuid.uuid4()}"))
        assert other.status_code == 200  # the server keeps serving
    retried = client.post("/invocations", json={"end_session": True}, headers=_headers(issuer, session))
    assert retried.status_code == 200 and retried.json()["session_ended"] is True
    assert holder["services"].pipeline.wait(30)
    memories = memories_of(read_store(tmp_path), "acme", "alice")
    assert [m.conversation_id for m in memories] == [session] and "Rex" in memories[0].content


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_local_index_write_failure_keeps_the_summary_in_the_outbox(app_client, monkeypatch, tmp_path: Path, code: int) -> None:
    client, holder, issuer = app_client
    pipeline = holder["services"].pipeline
    session = f"s-{uuid.uuid4()}"
    with monkeypatch.context() as patch:
        patch.setattr(LocalIndex, "put", _raise(code))
        ended = client.post("/invocations", json={"prompt": "My cat is called Tom.", "end_session": True},
                            headers=_headers(issuer, session))
        assert ended.status_code == 200  # accepted: durable in the outbox
        assert pipeline.wait(30) and pipeline.metrics["exhausted"] == 1
        other = {"Authorization": f"Bearer {issuer.mint('acme', 'bob')}", SESSION_HEADER: f"s-{uuid.uuid4()}"}
        again = client.post("/invocations", json={"prompt": "hello"}, headers=other)
        assert again.status_code == 200
    # bob's conversation is still open (its per-turn checkpoint is in the outbox too): end it
    assert client.post("/invocations", json={"end_session": True}, headers=other).status_code == 200
    assert pipeline.wait(30)
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1
    assert pipeline.replay_pending() == 1 and pipeline.wait(30)  # what a restart does
    assert not list((tmp_path / "outbox").glob("*.json"))
    memories = memories_of(read_store(tmp_path), "acme", "alice")
    assert [m.conversation_id for m in memories] == [session] and "Tom" in memories[0].content


# --- a server killed while a summary is in flight ------------------------------------------


def test_sigkill_mid_summary_is_stored_exactly_once_after_restart(tmp_path: Path) -> None:
    slow = AgentServer(tmp_path, AGENT_MODEL_PROVIDER="import:tests.hardening.slow_model:build_slow_summary_model",
                       HARDENING_SUMMARY_DELAY="60").start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-kill", "olga")
    session = f"kill-{uuid.uuid4()}"
    try:
        assert slow.invoke(token, {"prompt": "My boat is called Wave."}, session).status_code == 200
        assert slow.invoke(token, {"end_session": True}, session).status_code == 200
        busy = httpx.get(f"{slow.url}/ping", timeout=5).json()["status"]
        assert busy == "HealthyBusy"  # the summary is in flight (sleeping in the model)
        assert slow.proc is not None
        slow.proc.kill()  # SIGKILL while the summary sleeps in the model
        slow.proc.wait(timeout=10)
    finally:
        slow.stop()
    assert len(list((tmp_path / "outbox").glob("*.json"))) == 1
    assert memories_of(read_store(tmp_path), "tenant-kill", "olga") == []

    for _ in range(2):  # the first restart replays; the second finds nothing left to do
        restarted = AgentServer(tmp_path).start()
        try:
            restarted.wait_idle(timeout=30)
        finally:
            restarted.stop()
        memories = memories_of(read_store(tmp_path), "tenant-kill", "olga")
        assert [m.conversation_id for m in memories] == [session] and "Wave" in memories[0].content
        assert not list((tmp_path / "outbox").glob("*.json"))


def test_sigkill_mid_conversation_keeps_every_answered_turn(tmp_path: Path) -> None:
    server = AgentServer(tmp_path).start()
    token = DevIssuer(tmp_path / "dev-issuer").mint("tenant-crash", "pia")
    session = f"crash-{uuid.uuid4()}"
    try:
        assert server.invoke(token, {"prompt": "My boat is called Wave."}, session).status_code == 200
        assert server.invoke(token, {"prompt": "My kite is called Zephyr."}, session).status_code == 200
        # the loss window: checkpoints are written in the background, within
        # AGENT_CHECKPOINT_INTERVAL_SECONDS (1 s) of the turn; wait that out, then kill
        assert wait_until(lambda: any(
            "Zephyr" in t["text"] for e in LocalOutbox(tmp_path / "outbox").pending() for t in e.transcript
        ), timeout=10, interval=0.05)
        assert server.proc is not None
        server.proc.kill()  # SIGKILL mid-conversation: no end_session, no idle timer, no shutdown
        server.proc.wait(timeout=10)
    finally:
        server.stop()
    (checkpoint,) = LocalOutbox(tmp_path / "outbox").pending()
    assert checkpoint.open and checkpoint.conversation_id == session
    assert memories_of(read_store(tmp_path), "tenant-crash", "pia") == []

    for _ in range(2):  # the first restart closes and stores it; the second finds nothing left
        restarted = AgentServer(tmp_path).start()
        try:
            restarted.wait_idle(timeout=30)
        finally:
            restarted.stop()
        memories = memories_of(read_store(tmp_path), "tenant-crash", "pia")
        assert [m.conversation_id for m in memories] == [session], [m.content for m in memories]
        assert "Wave" in memories[0].content and "Zephyr" in memories[0].content
        assert not list((tmp_path / "outbox").glob("*.json"))


# --- the chat model (Bedrock ConverseStream) throttled or failing, through the app ------------


@pytest.fixture
def bedrock_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any, DevIssuer]]:
    """The app on a real Strands ``BedrockModel`` (built like the deployment's) whose requests a
    before-send hook answers; Strands' own retry pauses (4 s doubling) are not slept."""
    import strands.event_loop._retry as strands_retry

    from agent.chat_models import build_model

    monkeypatch.setattr(strands_retry.ModelRetryStrategy, "_calculate_delay", lambda self, attempt: 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    model = build_model("bedrock", model_id="us.anthropic.claude-sonnet-4-5", region="us-east-1")
    with app_on(model, tmp_path) as (client, issuer):
        yield client, model, issuer


@contextlib.contextmanager
def app_on(model: Any, tmp_path: Path) -> Iterator[tuple[TestClient, DevIssuer]]:
    """The app (dev tokens, memory off) whose every session talks to ``model``."""
    from agent.orchestrator import build_conversation
    from agent.services import Services
    from agent.sessions import SessionRegistry

    issuer = DevIssuer(tmp_path / "dev-issuer")
    settings = Settings(auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, memory_enabled=False)

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(lambda *_: build_conversation(model, None), max_sessions=8, idle_timeout_seconds=60)
        return Services(settings, issuer.verifier(), registry)

    with TestClient(create_app(settings, services_factory=services_factory)) as client:
        yield client, issuer


@pytest.mark.parametrize(("status", "code"), [(429, "ThrottlingException"), (503, "ServiceUnavailableException"),
                                              (408, "ModelTimeoutException"), (424, "ModelStreamErrorException"),
                                              (400, "ServiceQuotaExceededException")])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_failing_chat_model_is_retried_once_by_botocore_then_answers_503(bedrock_app, status: int, code: str, stream: bool) -> None:
    """One retry layer (botocore's, with backoff), not botocore's inside Strands' own (6 x 7
    ConverseStream calls and 124 s of pauses before the caller heard anything), then the
    documented 503 (on main: 500 "the request failed")."""
    from agent.chat_models import BEDROCK_MAX_ATTEMPTS

    client, model, issuer = bedrock_app
    faults = Faults(status, code)
    model.client.meta.events.register("before-send.bedrock-runtime", faults)
    response = client.post("/invocations", json={"prompt": "hello", "stream": stream},
                           headers=_headers(issuer, f"s-{uuid.uuid4()}"))
    retried = 1 + BEDROCK_MAX_ATTEMPTS if status >= 429 else 1  # botocore retries neither 408 nor 424
    assert faults.injected == {"ConverseStream": retried}
    if stream:
        assert response.status_code == 200  # already sent: the error is in the stream
        (event,) = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
        status_sent, body = event.pop("status"), event
    else:
        status_sent, body = response.status_code, response.json()
    assert status_sent == 503 and body["error"] == "unavailable"
    assert "arn:" not in json.dumps(body) and "injected" not in json.dumps(body)


# --- the chat model on an OpenAI-compatible endpoint, failing, through the app ----------------

OPENAI_REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def openai_status_error(kind: str, status: int) -> Any:
    import openai

    body = {"error": {"message": "upstream said: secret-provider-detail", "type": "server_error"}}
    response = httpx.Response(status, request=OPENAI_REQUEST, json=body)
    return getattr(openai, kind)(f"Error code: {status} - {body}", response=response, body=body["error"])


#: What the openai client raises once its own retries are spent (openai 3.x classes).
OPENAI_FAILURES: dict[str, Callable[[], Any]] = {
    "500": lambda: openai_status_error("InternalServerError", 500),
    "503": lambda: openai_status_error("InternalServerError", 503),
    "timeout": lambda: __import__("openai").APITimeoutError(request=OPENAI_REQUEST),
    "connection": lambda: __import__("openai").APIConnectionError(
        message="Connection error: secret-provider-detail", request=OPENAI_REQUEST),
}


class ScriptedOpenAI:
    """Stands in for ``openai.AsyncOpenAI``: every chat completion raises ``error``."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.requests: list[dict[str, Any]] = []

    def __call__(self, **client_args: Any) -> "ScriptedOpenAI":
        return self

    async def __aenter__(self) -> "ScriptedOpenAI":
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    @property
    def chat(self) -> "ScriptedOpenAI":
        return self

    @property
    def completions(self) -> "ScriptedOpenAI":
        return self

    async def create(self, **request: Any) -> Any:
        self.requests.append(request)
        assert self.error is not None
        raise self.error


@pytest.fixture
def openai_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, ScriptedOpenAI, DevIssuer]]:
    """The app on the Strands ``OpenAIModel`` that ``AGENT_MODEL_PROVIDER=openai`` builds."""
    import openai

    from agent.chat_models import build_model

    scripted = ScriptedOpenAI()
    monkeypatch.setattr(openai, "AsyncOpenAI", scripted)
    model = build_model("openai", model_id="gpt-oss-20b", base_url="http://127.0.0.1:9/v1", api_key="sk-test")
    with app_on(model, tmp_path) as (client, issuer):
        yield client, scripted, issuer


@pytest.mark.parametrize("failure", list(OPENAI_FAILURES))
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_failing_openai_compatible_model_answers_503_without_its_error_text(openai_app, failure: str, stream: bool) -> None:
    """A 5xx, timeout or lost connection of the endpoint answers 503 like a Bedrock failure (on
    main: 500 "the request failed"); the provider's message never reaches the caller."""
    client, scripted, issuer = openai_app
    scripted.error = OPENAI_FAILURES[failure]()
    response = client.post("/invocations", json={"prompt": "hello", "stream": stream},
                           headers=_headers(issuer, f"s-{uuid.uuid4()}"))
    assert len(scripted.requests) == 1 and scripted.requests[0]["model"] == "gpt-oss-20b"
    if stream:
        (event,) = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
        status_sent, body = event.pop("status"), event
    else:
        status_sent, body = response.status_code, response.json()
    assert (status_sent, body) == (503, {"error": "unavailable", "message": "the model is unavailable; retry shortly"})


def test_an_openai_compatible_model_refusing_the_apps_key_stays_an_internal_error(openai_app) -> None:
    """A 401 from the endpoint is the deployment's misconfiguration, not an outage to retry."""
    client, scripted, issuer = openai_app
    scripted.error = openai_status_error("AuthenticationError", 401)
    response = client.post("/invocations", json={"prompt": "hello"}, headers=_headers(issuer, f"s-{uuid.uuid4()}"))
    assert response.status_code == 500 and "secret-provider-detail" not in response.text
