"""The per-session orchestrator: names, one plugin per agent, identity forwarded to the specialist."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from strands.models import Model

from agent.orchestrator import ORCHESTRATOR_NAME, SPECIALIST_NAME, build_conversation
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.erasure import erase
from memory.embedders.local import LocalEmbedder
from memory.types import Scope
from memory.pipeline.outbox_local import LocalOutbox
from memory.plugin.invocation import Invocation
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.recall_tool import RECALL_TOOL_NAME
from memory.stores.multi_tenant import MultiTenantStore
from memory.pipeline.summarizer import Summarizer
from tests.support.scripted_model import ScriptedModel, ToolCall

STATE = Invocation("alice", "conv-1", "tenant-a").to_state()


@pytest.fixture()
def memory(tmp_path: Path):
    store = MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=LocalEmbedder())
    pipeline = SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(None, mode="extractive"))
    plugins: dict[str, MemoryPlugin] = {}

    def factory(name: str, *, summarize: bool, read_agent_name: str | None = None) -> MemoryPlugin:
        plugins[name] = MemoryPlugin(
            store, pipeline=pipeline, summarize=summarize, min_score=0.0, read_agent_name=read_agent_name)
        return plugins[name]

    yield store, pipeline, plugins, factory
    pipeline.shutdown()


async def test_specialist_is_a_tool_and_receives_the_callers_identity(memory) -> None:
    store, pipeline, plugins, factory = memory
    store.store(Scope("alice", "tenant-a", ORCHESTRATOR_NAME), "Alice researches tidal energy.")
    model = ScriptedModel([ToolCall(SPECIALIST_NAME, {"input": "tidal energy status"}), "specialist says hi", "done"])
    convo = build_conversation(model, factory)

    assert convo.agent.name == ORCHESTRATOR_NAME
    assert set(convo.agent.tool_names) == {SPECIALIST_NAME, RECALL_TOOL_NAME}
    assert set(plugins) == {ORCHESTRATOR_NAME, SPECIALIST_NAME}
    assert await convo.ask("look into tidal energy", dict(STATE)) == "done"

    specialist_call = model.calls[1]
    assert RECALL_TOOL_NAME in specialist_call.tool_names
    assert "Alice researches tidal energy." in (specialist_call.system_prompt or "")  # alice's, of tenant-a
    assert convo.memories_used() == plugins[SPECIALIST_NAME].used_memory_ids != []


async def test_only_the_orchestrator_stores_the_summary_even_when_the_specialist_was_used(memory) -> None:
    store, pipeline, plugins, factory = memory
    delegated = "The user wants an aisle seat on every long-haul flight."  # the model's words
    model = ScriptedModel([ToolCall(SPECIALIST_NAME, {"input": delegated}), "noted", "ok"])
    convo = build_conversation(model, factory)
    await convo.ask("Remember I prefer aisle seats.", dict(STATE))
    assert plugins[SPECIALIST_NAME].transcript == []  # a read-only plugin keeps no transcript
    convo.end_conversation()
    assert pipeline.wait(30)
    memories = store.list(Scope("alice", "tenant-a"))
    assert {m.agent_name for m in memories} == {ORCHESTRATOR_NAME}  # every unit: the orchestrator's
    assert all(delegated not in m.content for m in memories)
    (summary,) = [m for m in memories if m.memory_type == "summary"]
    assert summary.agent_name == ORCHESTRATOR_NAME and summary.conversation_id == STATE["conversation_id"]
    assert summary.content == "Remember I prefer aisle seats." and delegated not in summary.content
    assert pipeline.metrics["accepted"] == 1


async def test_the_specialist_is_given_the_users_past_conversations(memory) -> None:
    """Only the orchestrator stores memories (under its name), so the specialist, which serves the
    same user in the same conversation, must read those: in its own namespace nothing is ever
    stored, and its memories and recall tool would always come back empty."""
    store, pipeline, plugins, factory = memory
    first = build_conversation(ScriptedModel(["Noted."]), factory)
    await first.ask("Project Bluebird launches on March 3rd.", dict(STATE))
    first.end_conversation()
    assert pipeline.wait(30)

    ask = ToolCall(SPECIALIST_NAME, {"input": "When does project Bluebird launch?"})
    model = ScriptedModel([ask, ToolCall(RECALL_TOOL_NAME, {"query": "Bluebird launch"}),
                           lambda call: call.last_tool_result_text, "done"])
    second = build_conversation(model, factory)
    await second.ask("Research the Bluebird launch for me.", Invocation("alice", "conv-2", "tenant-a").to_state())
    specialist_call, recalled = model.calls[1], model.calls[2].last_tool_result_text or ""
    assert "March 3rd" in (specialist_call.system_prompt or "") and "March 3rd" in recalled
    assert plugins[SPECIALIST_NAME].used_memory_ids != []
    assert {m.agent_name for m in store.list(Scope("alice", "tenant-a"))} == {ORCHESTRATOR_NAME}


class StreamOnlyModel(Model):
    """A hand-written model: subclasses write ``stream``; no configuration, no structured output."""

    def update_config(self, **model_config: Any) -> None:
        pass

    def get_config(self) -> Any:
        return {}

    def structured_output(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


class TwoSpecialistCalls(StreamOnlyModel):
    """Orchestrator: one message with two ``research_specialist`` toolUse blocks, then an answer
    quoting both results; specialist: "finding: <its input>"."""

    def __init__(self) -> None:
        self.specialist_inputs: list[str] = []

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):  # type: ignore[override]
        last = messages[-1]["content"]
        results = [c["text"] for b in last if "toolResult" in b for c in b["toolResult"]["content"] if "text" in c]
        is_orchestrator = SPECIALIST_NAME in [spec["name"] for spec in tool_specs or []]
        yield {"messageStart": {"role": "assistant"}}
        if is_orchestrator and not results:
            for i, topic in enumerate(("tides", "winds")):
                yield {"contentBlockStart": {"start": {"toolUse": {"name": SPECIALIST_NAME, "toolUseId": f"t{i}"}}}}
                yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps({"input": topic})}}}}
                yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
        else:
            if not is_orchestrator:
                self.specialist_inputs.append(last[0]["text"])
                await asyncio.sleep(0.01)  # overlap, if the executor ran both at once
            text = " + ".join(results) if is_orchestrator else f"finding: {last[0]['text']}"
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": text}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 0}}}


async def test_two_specialist_calls_in_one_message_run_one_after_the_other(memory) -> None:
    store, pipeline, plugins, factory = memory
    model = TwoSpecialistCalls()
    convo = build_conversation(model, factory)
    answer = await convo.ask("Research tides and winds for me.", dict(STATE))
    assert answer == "finding: tides + finding: winds"  # both calls succeeded (no ConcurrencyException)
    assert model.specialist_inputs == ["tides", "winds"]
    convo.end_conversation()
    assert pipeline.wait(30)
    assert {m.agent_name for m in store.list(Scope("alice", "tenant-a"))} == {ORCHESTRATOR_NAME}


async def test_without_memory_the_placeholder_is_removed() -> None:
    model = ScriptedModel(["hi"])
    convo = build_conversation(model, None)
    await convo.ask("hello", dict(STATE))
    assert "{memory_context}" not in (model.calls[0].system_prompt or "")
    assert convo.agent.tool_names == [SPECIALIST_NAME] and convo.memories_used() == []
    convo.end_conversation()  # nothing to end, no error


async def test_a_specialist_stops_showing_memories_erased_during_the_session(tmp_path: Path) -> None:
    """After ``forget``, the orchestrator's plugin drops what it injected; the specialist of the
    same session, whose read-only plugin writes no checkpoint, must drop its block too."""
    store = MultiTenantStore.for_local(root_dir=tmp_path / "vectors", embedder=LocalEmbedder())
    outbox = LocalOutbox(tmp_path / "outbox")
    pipeline = SummaryPipeline(store, outbox, Summarizer(None, mode="extractive"), erasure_refresh_seconds=0.0)

    def factory(name: str, *, summarize: bool, read_agent_name: str | None = None) -> MemoryPlugin:
        return MemoryPlugin(store, pipeline=pipeline, summarize=summarize, min_score=0.0,
                            read_agent_name=read_agent_name)

    try:
        store.store(Scope("alice", "tenant-a", ORCHESTRATOR_NAME), "Alice's door code is 4321.")
        ask_specialist = ToolCall(SPECIALIST_NAME, {"input": "what is the door code?"})
        model = ScriptedModel([ask_specialist, "it is in memory", "done",
                               "still here",
                               ask_specialist, "nothing remembered", "done"])
        convo = build_conversation(model, factory)
        await convo.ask("What is my door code?", dict(STATE))
        assert "4321" in (model.calls[1].system_prompt or "")  # the specialist was given it
        erase(outbox, store, tenant_id="tenant-a", user_id="alice")
        await convo.ask("I am still here.", dict(STATE))  # its checkpoint finds the marker
        assert pipeline.flush(30)
        await convo.ask("And the door code?", dict(STATE))
        again = model.calls[5]  # orchestrator, specialist, orchestrator; orchestrator; orchestrator, *specialist*
        assert SPECIALIST_NAME not in again.tool_names and "4321" not in (again.system_prompt or "")
    finally:
        pipeline.shutdown()


class NarratingModel(StreamOnlyModel):
    """Like Claude: the orchestrator says what it does, then calls the specialist in the same
    message, then answers; the specialist answers."""

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):  # type: ignore[override]
        after_tool = any("toolResult" in b for b in messages[-1]["content"])
        if "research specialist" in (system_prompt or ""):
            text, ask = "The launch is on March 3rd.", False
        else:
            text, ask = ("Bluebird launches on March 3rd.", False) if after_tool else ("Let me ask the specialist.", True)
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        for part in (text[:9], text[9:]):  # two chunks
            yield {"contentBlockDelta": {"delta": {"text": part}}}
        yield {"contentBlockStop": {}}
        if ask:
            yield {"contentBlockStart": {"start": {"toolUse": {"name": SPECIALIST_NAME, "toolUseId": "t1"}}}}
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps({"input": "When?"})}}}}
            yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "tool_use" if ask else "end_turn"}}
        yield {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 0}}}


async def test_a_streamed_turn_keeps_its_messages_apart() -> None:
    """Text the model streams before a tool call and the answer after it are two messages: the
    stream must not glue them into one sentence ("specialist.Bluebird")."""
    convo = build_conversation(NarratingModel(), None)
    chunks = [chunk async for chunk in convo.stream("When does Bluebird launch?", dict(STATE))]
    assert "".join(chunks) == "Let me ask the specialist.\n\nBluebird launches on March 3rd."
    assert len(chunks) == 4  # still streamed chunk by chunk
