"""The per-session orchestrator: names, one plugin per agent, identity forwarded to the specialist."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.orchestrator import ORCHESTRATOR_NAME, SPECIALIST_NAME, build_conversation
from memory.background import SummaryPipeline
from memory.embedders import LocalEmbedder
from memory.models import Scope
from memory.outbox import Outbox
from memory.plugin import MemoryPlugin
from memory.recall_tool import RECALL_TOOL_NAME
from memory.store import MultiTenantMemoryStore
from memory.summarizer import Summarizer
from tests.support.scripted_model import ScriptedModel, ToolCall

STATE = {"tenant_context": "tenant-a", "user_id": "alice", "conversation_id": "conv-1"}


@pytest.fixture()
def memory(tmp_path: Path):
    store = MultiTenantMemoryStore.for_local(root_dir=tmp_path / "vectors", embedder=LocalEmbedder())
    pipeline = SummaryPipeline(store, Outbox(tmp_path / "outbox"), Summarizer(None, mode="extractive"))
    plugins: dict[str, MemoryPlugin] = {}

    def factory(name: str) -> MemoryPlugin:
        plugins[name] = MemoryPlugin(store, pipeline=pipeline, min_score=0.0)
        return plugins[name]

    yield store, pipeline, plugins, factory
    pipeline.shutdown()


async def test_specialist_is_a_tool_and_receives_the_callers_identity(memory) -> None:
    store, pipeline, plugins, factory = memory
    store.store(Scope("alice", "tenant-a", SPECIALIST_NAME), "Alice researches tidal energy.")
    model = ScriptedModel([ToolCall(SPECIALIST_NAME, {"input": "tidal energy status"}), "specialist says hi", "done"])
    convo = build_conversation(model, factory)

    assert convo.agent.name == ORCHESTRATOR_NAME
    assert set(convo.agent.tool_names) == {SPECIALIST_NAME, RECALL_TOOL_NAME}
    assert set(plugins) == {ORCHESTRATOR_NAME, SPECIALIST_NAME}
    assert await convo.ask("look into tidal energy", dict(STATE)) == "done"

    specialist_call = model.calls[1]
    assert RECALL_TOOL_NAME in specialist_call.tool_names
    assert "Alice researches tidal energy." in (specialist_call.system_prompt or "")  # its own memories
    assert "tidal" not in (model.calls[0].system_prompt or "")  # not the orchestrator's namespace
    assert convo.memories_used() == plugins[SPECIALIST_NAME].used_memory_ids != []


async def test_end_conversation_summarizes_every_agent_that_talked(memory) -> None:
    store, pipeline, plugins, factory = memory
    model = ScriptedModel([ToolCall(SPECIALIST_NAME, {"input": "I prefer aisle seats."}), "noted", "ok"])
    convo = build_conversation(model, factory)
    await convo.ask("Remember I prefer aisle seats.", dict(STATE))
    convo.end_conversation()
    assert pipeline.wait(10)
    agents = sorted(m.agent_name for m in store.list(Scope("alice", "tenant-a")))
    assert agents == [ORCHESTRATOR_NAME, SPECIALIST_NAME]


async def test_without_memory_the_placeholder_is_removed() -> None:
    model = ScriptedModel(["hi"])
    convo = build_conversation(model, None)
    await convo.ask("hello", dict(STATE))
    assert "{memory_context}" not in (model.calls[0].system_prompt or "")
    assert convo.agent.tool_names == [SPECIALIST_NAME] and convo.memories_used() == []
    convo.end_conversation()  # nothing to end, no error
