"""The seed package's documented examples (strands-s3-vectors-memory 0.2.0 README), run with only
the import line changed: moto S3 Vectors (with the QueryVectors route) and STS, WordLlama
embeddings, the scripted Strands model."""

from __future__ import annotations

import re
import tempfile
from typing import Any, Iterator

import pytest
from moto import mock_aws
from strands import Agent

from memory import (
    ConfigurationError,
    IsolationError,
    MultiTenantS3VectorMemory,
    S3VectorMemory,
    S3VectorMemoryPlugin,
    TokenVendingMachine,
)
from memory.aws import make_client
from memory.embedders.local import LocalEmbedder
from memory.index.s3vectors import create_index_params
from memory.plugin.context_block import extract_block
from memory.plugin.invocation import (
    CONVERSATION_ID,
    END_SESSION,
    TENANT_CONTEXT,
    USER_ID,
    InvalidInvocationState,
)
from tests.support.scripted_model import ScriptedModel, ToolCall

BUCKET = "my-vector-memory"
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/memory-tvm"
BASE_PROMPT = """You are a helpful assistant.

{memory_context}

Use prior context naturally in your responses."""
ACME = {"tenantId": "tenant-001", "tenantName": "Acme Corp"}
GLOBEX = {"tenantId": "tenant-002", "tenantName": "Globex"}


@pytest.fixture(autouse=True)
def private_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """The plugin's default outbox (a new temporary directory) goes under the test's tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def operator(s3vectors_double: Any) -> Iterator[Any]:
    """Inside mock_aws: the vector bucket and the tenants' indexes (onboarded by an operator)."""
    with mock_aws():
        client = make_client("s3vectors", region=REGION)
        client.create_vector_bucket(vectorBucketName=BUCKET)
        for tenant in ("tenant-001", "tenant-002"):
            client.create_index(**create_index_params(BUCKET, f"memory-{tenant}", LocalEmbedder.dimension))
        yield client


def state(user: str, conversation: str, tenant: Any = None, end: bool = False) -> dict[str, Any]:
    """The invocation_state of the seed's examples (tenant_context as its documented dict)."""
    result: dict[str, Any] = {USER_ID: user, CONVERSATION_ID: conversation, END_SESSION: end}
    if tenant is not None:
        result[TENANT_CONTEXT] = tenant
    return result


def vectors(client: Any, index: str) -> list[dict[str, Any]]:
    return client.list_vectors(vectorBucketName=BUCKET, indexName=index, returnMetadata=True)["vectors"]


def summaries(client: Any, index: str) -> list[dict[str, Any]]:
    """The summary vectors (one per stored conversation; its other units share its metadata)."""
    return [v for v in vectors(client, index) if v["metadata"]["type"] == "summary"]


def assistant(plugin: S3VectorMemoryPlugin, model: ScriptedModel) -> Agent:
    """The seed's example agent: the plugin's prompt, plugin and recall tool."""
    return Agent(model=model, name="assistant", tools=[plugin.memory_tool], plugins=[plugin],
                 system_prompt=BASE_PROMPT, callback_handler=None)


def test_single_tenant_example(operator: Any) -> None:
    store = S3VectorMemory(bucket_name=BUCKET, region_name=REGION, embedding_model=LocalEmbedder())
    plugin = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT)
    model = ScriptedModel(default_reply="Noted.")
    agent = assistant(plugin, model)

    agent("My favourite framework is Strands Agents.", invocation_state=state("user-001", "conv-001"))
    agent("Thanks, bye.", invocation_state=state("user-001", "conv-001", end=True))
    assert plugin.wait(30)
    (stored,) = summaries(operator, "memory")
    assert stored["metadata"]["user_id"] == "user-001" and stored["metadata"]["agent_name"] == "assistant"
    assert "Strands Agents" in stored["metadata"]["content"]

    # a new Agent with the same name (e.g. one per request) continues with the same memory
    agent = assistant(plugin, model)
    agent("Which framework is my favourite?", invocation_state=state("user-001", "conv-002"))
    assert "Strands Agents" in (extract_block(model.system_prompts[-1]) or "")

    # memory_tool: mid-turn recall on demand, as the model decides (a new conversation, a greeting
    # first so nothing relevant is injected)
    model.add_steps("Hello!", ToolCall("retrieve_memory", {"query": "favourite framework"}),
                    lambda call: call.last_tool_result_text or "")
    agent("Good morning", invocation_state=state("user-001", "conv-003"))
    answer = str(agent("Remind me of the framework I like", invocation_state=state("user-001", "conv-003")))
    assert "Strands Agents" in answer
    assert "retrieve_memory" in model.calls[-1].tool_names and "memory_tool" not in model.calls[-1].tool_names


def test_single_tenant_plugin_with_the_seeds_tenant_context_keeps_its_memory(operator: Any) -> None:
    """The seed's single-tenant store takes ``tenant_context`` and keeps one index; the plugin
    passed it on as a tenant the store refused: every turn ran without memory, every summary was
    dead-lettered. It is checked, then dropped, for injection and for the recall tool alike."""
    store = S3VectorMemory(bucket_name=BUCKET, region_name=REGION, embedding_model=LocalEmbedder())
    plugin = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT)
    model = ScriptedModel(default_reply="Noted.")
    agent = assistant(plugin, model)
    agent("My favourite framework is Strands Agents.", invocation_state=state("user-001", "conv-001", ACME))
    agent("Thanks, bye.", invocation_state=state("user-001", "conv-001", ACME, end=True))
    assert plugin.wait(30) and plugin.agents["assistant"].pipeline.metrics["dead_lettered"] == 0
    (stored,) = summaries(operator, "memory")
    assert "Strands Agents" in stored["metadata"]["content"]

    agent("Which framework is my favourite?", invocation_state=state("user-001", "conv-002", GLOBEX))
    assert "Strands Agents" in (extract_block(model.system_prompts[-1]) or "")  # one index, as the seed
    model.add_steps(ToolCall("retrieve_memory", {"query": "favourite framework"}),
                    lambda call: call.last_tool_result_text or "")
    assert "Strands Agents" in str(agent("Remind me", invocation_state=state("user-001", "conv-002", GLOBEX)))
    with pytest.raises(InvalidInvocationState):  # still checked: a malformed context fails the turn
        agent("Hi", invocation_state=state("user-001", "conv-003", {"tenantId": "../x"}))


def test_store_and_retrieve_shapes(operator: Any) -> None:
    store = S3VectorMemory(BUCKET, REGION, LocalEmbedder())
    stored = store.store_memory("user-001", "The user prefers dark mode in every editor.")
    assert stored["status"] == "success" and stored["index_name"] == "memory" and stored["key"]
    store.store_memory("user-001", "The user's cat is called Tom.", agent_name="assistant")
    store.store_memory("user-002", "Another user prefers light mode.")
    results = store.retrieve_memories("user-001", "which editor mode does the user prefer?", top_k=5)
    assert [r["key"] for r in results][0] == stored["key"] and len(results) == 2  # user-002's never
    assert [set(r) for r in results] == [{"key", "content", "similarity", "stored_at"}] * 2
    assert results == sorted(results, key=lambda r: r["similarity"], reverse=True)
    assert all(0.0 <= r["similarity"] <= 1.0 and re.fullmatch(r"\d{8}_\d{6}", r["stored_at"]) for r in results)
    assert store.retrieve_memories("user-001", "   ") == []


def test_multi_agent_example_with_supervisor_read(operator: Any) -> None:
    store = MultiTenantS3VectorMemory(bucket_name=BUCKET, region_name=REGION,
                                      embedding_model=LocalEmbedder(), tvm_role_arn=ROLE)
    plugin = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT)
    model = ScriptedModel(default_reply="ok")
    orchestrator = Agent(model=model, name="orchestrator", plugins=[plugin], system_prompt=BASE_PROMPT,
                         callback_handler=None)
    researcher = Agent(model=model, name="researcher", plugins=[plugin], system_prompt=BASE_PROMPT,
                       callback_handler=None)

    orchestrator("We decided to launch the product in March.", invocation_state=state("user-456", "c-1", ACME))
    orchestrator("Bye.", invocation_state=state("user-456", "c-1", ACME, end=True))
    researcher("The market research shows strong demand in Europe.", invocation_state=state("user-456", "c-2", ACME))
    researcher("Bye.", invocation_state=state("user-456", "c-2", ACME, end=True))
    assert plugin.wait(30)
    assert sorted(plugin.agents) == ["orchestrator", "researcher"]
    agents = sorted(v["metadata"]["agent_name"] for v in summaries(operator, "memory-tenant-001"))
    assert agents == ["orchestrator", "researcher"]

    everything = store.retrieve_memories(user_id="user-456", query="what has been decided so far?",
                                         tenant_context=ACME, agent_name=None)
    assert {"March" in r["content"] for r in everything} == {True, False}  # both agents' memories
    own = store.retrieve_memories(user_id="user-456", query="what has been decided so far?",
                                  tenant_context=ACME, agent_name="researcher")
    assert len(own) == 1 and "Europe" in own[0]["content"]

    # each agent is injected with its own memories on its next conversation
    orchestrator("When do we launch the product?", invocation_state=state("user-456", "c-3", ACME))
    block = extract_block(model.system_prompts[-1]) or ""
    assert "March" in block and "Europe" not in block


def test_multi_tenant_example_isolates_tenants(operator: Any) -> None:
    store = MultiTenantS3VectorMemory(bucket_name=BUCKET, region_name=REGION,
                                      embedding_model=LocalEmbedder(), tvm_role_arn=ROLE)
    plugin = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT)
    model = ScriptedModel(default_reply="ok")
    agent = assistant(plugin, model)

    agent("Our Q4 budget is $2M and it is confidential.", invocation_state=state("user-456", "conv-001", ACME))
    agent("Got it, thanks.", invocation_state=state("user-456", "conv-001", ACME, end=True))
    assert plugin.wait(30)
    assert len(summaries(operator, "memory-tenant-001")) == 1 and vectors(operator, "memory-tenant-002") == []

    question = "What did I tell you about our Q4 budget?"
    agent(question, invocation_state=state("user-456", "conv-002", ACME))
    assert "$2M" in (extract_block(model.system_prompts[-1]) or "")
    agent(question, invocation_state=state("user-456", "conv-003", GLOBEX))  # same user id, other tenant
    assert extract_block(model.system_prompts[-1]) is None
    assert store.retrieve_memories("user-456", question, tenant_context=GLOBEX) == []
    assert store.retrieve_memories("user-456", question, tenant_context="tenant-001")[0]["content"]

    # the recall tool of tenant-002 cannot reach tenant-001's index either
    model.add_steps(ToolCall("retrieve_memory", {"query": "Q4 budget"}), lambda call: call.last_tool_result_text or "")
    assert "$2M" not in str(agent("Search my memory for the budget", invocation_state=state("user-456", "conv-003", GLOBEX)))


@pytest.mark.parametrize("bad", [{"tenantName": "Acme Corp"}, {"tenantId": "Tenant 1"}, {"tenantId": ""}])
def test_tenant_dict_without_a_valid_tenant_id_fails_the_turn(operator: Any, bad: dict[str, str]) -> None:
    store = MultiTenantS3VectorMemory(BUCKET, REGION, LocalEmbedder(), tvm_role_arn=ROLE)
    plugin = S3VectorMemoryPlugin(store, BASE_PROMPT)
    model = ScriptedModel(default_reply="ok")
    agent = Agent(model=model, name="assistant", plugins=[plugin], system_prompt=BASE_PROMPT, callback_handler=None)
    with pytest.raises(InvalidInvocationState, match="tenant"):
        agent("Hello", invocation_state=state("user-456", "conv-001", bad))
    assert model.calls == []  # never answered without memory
    with pytest.raises(ValueError, match="tenantId"):
        store.store_memory("user-456", "x", tenant_context=bad)
    with pytest.raises(ValueError, match="tenantId"):
        store.retrieve_memories("user-456", "x", tenant_context=None)


def test_unnamed_agents_are_refused(operator: Any) -> None:
    plugin = S3VectorMemoryPlugin(S3VectorMemory(BUCKET, REGION, LocalEmbedder()), BASE_PROMPT)
    with pytest.raises(ValueError, match="explicit, stable and unique name"):
        Agent(model=ScriptedModel(), plugins=[plugin], system_prompt=BASE_PROMPT)


def test_multi_tenant_store_without_tvm_role_is_refused() -> None:
    with pytest.raises(ValueError, match="tvm_role_arn"):
        MultiTenantS3VectorMemory(bucket_name=BUCKET, region_name=REGION, embedding_model=LocalEmbedder())


def test_seed_defaults_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_VECTOR_BUCKET_NAME", "from-env")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    store = S3VectorMemory()
    assert (store.bucket_name, store.region_name) == ("from-env", "eu-west-1")
    assert store.embedder.model_id == "amazon.nova-2-multimodal-embeddings-v1:0"  # type: ignore[attr-defined]
    assert store.embedder.dimension == 1024


def test_without_a_region_the_store_says_to_set_one_instead_of_guessing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed fell back to us-east-1; the README says ours names the setting instead."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigurationError, match="set AWS_REGION"):
        S3VectorMemory(bucket_name=BUCKET)


def test_the_seeds_embedding_model_variable_names_the_bedrock_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed reads ``EMBEDDING_MODEL`` (e.g. a cross-region inference profile of Nova); ignoring
    it would call another model id than the deployment's, or embed with one it is not allowed."""
    profile = "us.amazon.nova-2-multimodal-embeddings-v1:0"
    monkeypatch.setenv("EMBEDDING_MODEL", profile)
    assert S3VectorMemory(BUCKET, REGION).embedder.model_id == profile  # type: ignore[attr-defined]
    multi = MultiTenantS3VectorMemory(BUCKET, REGION, tvm_role_arn=ROLE)
    assert multi.embedder.model_id == profile  # type: ignore[attr-defined]
    chosen = S3VectorMemory(BUCKET, REGION, embedding_model="amazon.nova-2-multimodal-embeddings-v1:0")
    assert chosen.embedder.model_id == "amazon.nova-2-multimodal-embeddings-v1:0"  # type: ignore[attr-defined]


def test_token_vending_machine_and_isolation_error_are_the_seeds_names() -> None:
    with mock_aws():
        tvm = TokenVendingMachine(role_arn=ROLE, region_name=REGION)
        assert tvm.get_client("s3vectors", ACME) is tvm.get_client("s3vectors", "tenant-001")
        with pytest.raises(IsolationError):
            tvm.get_client("s3vectors", {"tenantName": "no id"})


def test_the_seeds_get_session_gives_a_boto3_session_with_the_tenants_credentials() -> None:
    """The seed's reference documents ``TokenVendingMachine.get_session(tenant_context) ->
    boto3.Session`` beside ``get_client``."""
    import boto3

    with mock_aws():
        tvm = TokenVendingMachine(role_arn=ROLE, region_name=REGION)
        session = tvm.get_session(ACME)
        assert isinstance(session, boto3.Session) and session.region_name == REGION
        vended = tvm.credentials_for("tenant-001").credentials
        assert session.get_credentials().access_key == vended.access_key_id
        assert session.get_credentials().token == vended.session_token
        with pytest.raises(IsolationError):
            tvm.get_session({"tenantName": "no id"})


def test_agents_sharing_the_plugin_never_record_one_users_turn_in_anothers_conversation(tmp_path: Any) -> None:
    """One Agent per request, one plugin: a turn of bob's that opens while alice's is in flight on
    another agent must not take alice's words into bob's memory (``MemoryPlugin`` follows one
    conversation at a time; the interleaved turn is dropped, not misattributed)."""
    import threading

    from strands.hooks import BeforeInvocationEvent

    from memory import Scope, create_store

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "v")
    seed = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT, summary_model=ScriptedModel())
    alice_started, bob_turn_open, alice_done = threading.Event(), threading.Event(), threading.Event()

    def bob_answers(call: Any) -> str:
        bob_turn_open.set()
        assert alice_done.wait(30)
        return "Football, nice."

    alice_agent = Agent(model=ScriptedModel(["Noted."]), name="researcher", plugins=[seed], callback_handler=None)
    bob_agent = Agent(model=ScriptedModel([bob_answers]), name="researcher", plugins=[seed], callback_handler=None)

    def alice_input_comes_late(event: BeforeInvocationEvent) -> None:  # after the plugin's own hook
        alice_started.set()
        assert bob_turn_open.wait(30)

    alice_agent.add_hook(alice_input_comes_late, BeforeInvocationEvent)

    def alice_turn() -> None:
        alice_agent("My diagnosis is diabetes.", invocation_state={
            TENANT_CONTEXT: ACME, USER_ID: "alice", CONVERSATION_ID: "conv-alice", END_SESSION: True})
        alice_done.set()

    alice = threading.Thread(target=alice_turn)
    alice.start()
    assert alice_started.wait(30)
    bob_agent("I like football.", invocation_state={
        TENANT_CONTEXT: ACME, USER_ID: "bob", CONVERSATION_ID: "conv-bob", END_SESSION: True})
    alice.join(10)
    assert seed.wait(timeout=30)
    bob = " ".join(m.content for m in store.list(Scope("bob", "tenant-001", "researcher")))
    alice_memories = " ".join(m.content for m in store.list(Scope("alice", "tenant-001", "researcher")))
    assert "diabetes" not in bob and "Noted." not in bob
    assert "I like football." in bob and "Football, nice." in bob  # bob's turn kept whole
    assert "football" not in alice_memories


def test_a_base_prompt_without_the_placeholder_gets_the_memories_appended_unlike_the_seed(tmp_path: Any) -> None:
    """The seed injected nothing into a prompt without ``{memory_context}``; the drop-in appends
    the block at its end (README, "Coming from strands-s3-vectors-memory")."""
    from memory import create_store

    plain = "You are a helpful assistant."
    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "v")
    seed = S3VectorMemoryPlugin(store=store, base_prompt=plain, summary_model=ScriptedModel())
    model = ScriptedModel(default_reply="Noted.")
    agent = Agent(model=model, name="assistant", plugins=[seed], system_prompt=plain, callback_handler=None)
    agent("My favourite framework is Strands Agents.", invocation_state=state("alice", "c1", ACME, end=True))
    assert seed.wait(timeout=30)
    agent("Which framework is my favourite?", invocation_state=state("alice", "c2", ACME))
    prompt = model.system_prompts[-1]
    block = extract_block(prompt) or ""
    assert prompt.startswith(plain) and prompt.rstrip().endswith(block.rstrip()) and "Strands Agents" in block


def test_a_new_agent_per_request_keeps_the_history_it_was_built_with(tmp_path: Any) -> None:
    """A new Agent per request, built with the conversation's stored history, after another user's
    request: that history is the incoming conversation's own and reaches the model untouched."""
    from memory import create_store

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "v")
    seed = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT, summary_model=ScriptedModel())
    alice = Agent(model=ScriptedModel(["Noted."]), name="researcher", plugins=[seed], callback_handler=None)
    alice("My diagnosis is diabetes.", invocation_state={TENANT_CONTEXT: ACME, USER_ID: "alice", CONVERSATION_ID: "a"})
    history = [{"role": "user", "content": [{"text": "I like football."}]},
               {"role": "assistant", "content": [{"text": "Nice."}]}]
    model = ScriptedModel(["Football, yes."])
    bob = Agent(model=model, name="researcher", plugins=[seed], callback_handler=None, messages=history)
    bob("What do I like?", invocation_state={TENANT_CONTEXT: ACME, USER_ID: "bob", CONVERSATION_ID: "b"})
    sent = [b["text"] for m in model.calls[0].messages for b in m["content"]]
    assert sent == ["I like football.", "Nice.", "What do I like?"]
    assert seed.wait(timeout=30)


@pytest.mark.parametrize("third", ["carol", "bob"], ids=["a-new-conversation", "the-other-agents-conversation"])
def test_an_agent_reused_for_another_conversation_never_shows_it_the_history_of_an_earlier_one(
    tmp_path: Any, third: str
) -> None:
    """A pool of agents sharing the plugin (one per worker): the agent that served alice, reused
    after another agent served bob, must not send alice's messages to the model for carol (a new
    conversation) or for bob (continuing his conversation on this agent)."""
    from memory import create_store

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "v")
    seed = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT, summary_model=ScriptedModel())
    first = ScriptedModel(["Noted.", "Hello."])
    worker_one = Agent(model=first, name="researcher", plugins=[seed], callback_handler=None)
    worker_two = Agent(model=ScriptedModel(["Nice."]), name="researcher", plugins=[seed], callback_handler=None)
    worker_one("My diagnosis is diabetes.", invocation_state=state("alice", "conv-alice", ACME))
    worker_two("I like football.", invocation_state=state("bob", "conv-bob", ACME))
    worker_one("What do you know about me?", invocation_state=state(third, f"conv-{third}", ACME))
    sent = [b.get("text") for m in first.calls[1].messages for b in m["content"]]
    assert not any("diabetes" in (text or "") or text == "Noted." for text in sent), sent
    assert sent[-1] == "What do you know about me?"
    assert seed.wait(timeout=30)


def test_memories_the_seed_itself_wrote_keep_its_stored_at(operator: Any) -> None:
    """After the import-line switch the index still holds the seed's own vectors (no
    ``stored_at_epoch``): a note keeps its ``stored_at`` (on main: ``19700101_000000``) and an
    undated session summary answers ``""``, as the seed does."""
    embedder = LocalEmbedder()
    store = S3VectorMemory(BUCKET, REGION, embedder)
    store.store_memory("user-001", "The user prefers dark mode.")  # creates the seed's index "memory"
    note, summary = embedder.embed(["The user likes green tea.", "Summary: the user likes tea."], "index")
    operator.put_vectors(vectorBucketName=BUCKET, indexName="memory", vectors=[
        {"key": "user-001_20260101_120000_ab12cd34", "data": {"float32": note},
         "metadata": {"user_id": "user-001", "agent_name": "default", "content": "The user likes green tea.",
                      "stored_at": "20260101_120000"}},
        {"key": "user-001_default_summary_0123456789abcdef", "data": {"float32": summary},
         "metadata": {"user_id": "user-001", "agent_name": "default", "content": "Summary: the user likes tea.",
                      "conversation_id": "conv-1", "type": "summary"}},
    ])
    results = {r["key"]: r["stored_at"] for r in store.retrieve_memories("user-001", "tea", top_k=5)}
    assert results["user-001_20260101_120000_ab12cd34"] == "20260101_120000"
    assert results["user-001_default_summary_0123456789abcdef"] == ""


def test_the_start_up_replay_is_not_part_of_the_request_that_built_the_plugin(tmp_path: Any) -> None:
    """A plugin built inside a request (one per request, as a web app does) replays what a
    previous process left in its outbox when its first agent attaches: that replay, and the
    summaries it schedules, ran in the request's trace context, so they became children of the
    request's span. They are roots now, as in the app (which replays on a thread of its own)."""
    from memory import LocalOutbox, Scope, create_store, telemetry
    from memory.pipeline.outbox import OutboxEntry
    from tests.support.otel import capture_telemetry

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "v")
    outbox = tmp_path / "outbox"
    LocalOutbox(outbox).put(OutboxEntry("tenant-001", "alice", "researcher", "conv-left",
                                        [{"role": "user", "text": "My budget is 2M dollars."}], opened="m1"))
    with capture_telemetry() as captured:
        with telemetry.span("request"):
            seed = S3VectorMemoryPlugin(store=store, base_prompt=BASE_PROMPT, outbox_dir=outbox,
                                        summary_model=ScriptedModel())
            Agent(model=ScriptedModel(), name="researcher", plugins=[seed], callback_handler=None)
        assert seed.wait(timeout=30)
        replay = captured.one("memory.outbox.replay")
        summaries = captured.named("memory.summary")
    request = captured.one("request")
    assert replay.parent is None and replay.context.trace_id != request.context.trace_id
    assert summaries and all(s.context.trace_id != request.context.trace_id for s in summaries)
    assert {m.conversation_id for m in store.list(Scope("alice", "tenant-001", "researcher"))} == {"conv-left"}
