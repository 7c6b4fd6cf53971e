"""A later turn of a conversation redoes none of its first turn's per-conversation work.

The plugin's hooks run on every turn; what depends only on the conversation (its identity's
checks, its system prompt) is done once, and is done again when what it depends on changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from strands import Agent

from memory import telemetry
from memory.errors import IdentityTooLong
from memory.plugin import plugin as plugin_module
from memory.plugin.invocation import CONVERSATION_ID, TENANT_CONTEXT, USER_ID
from memory.plugin.plugin import MemoryPlugin
from memory.types import Scope
from tests.support.scripted_model import ScriptedModel

BASE = "You are a helpful assistant.\n\n{memory_context}\n\nBe brief."


class PromptCountingAgent(Agent):
    """An Agent that counts how often its system prompt is set."""

    prompt_sets = 0

    @property  # type: ignore[override]
    def system_prompt(self) -> str | None:
        return Agent.system_prompt.fget(self)  # type: ignore[attr-defined]

    @system_prompt.setter
    def system_prompt(self, value: Any) -> None:
        self.prompt_sets += 1
        Agent.system_prompt.fset(self, value)  # type: ignore[attr-defined]


def state(conversation: str = "conv-1", user: str = "alice") -> dict[str, Any]:
    return {TENANT_CONTEXT: "acme", USER_ID: user, CONVERSATION_ID: conversation}


def make_agent(store: Any, model: ScriptedModel, pipeline: Any = None) -> tuple[PromptCountingAgent, MemoryPlugin]:
    plugin = MemoryPlugin(store, pipeline=pipeline)
    agent = PromptCountingAgent(model=model, name="orchestrator", system_prompt=BASE, plugins=[plugin],
                                callback_handler=None)
    return agent, plugin


def test_a_later_turn_leaves_the_system_prompt_the_agent_holds(fake_store) -> None:
    fake_store.add(Scope("alice", "acme", "orchestrator"), "The user's project budget is 2M dollars.")
    model = ScriptedModel(default_reply="ok")
    agent, _ = make_agent(fake_store, model)
    agent("what is my budget?", invocation_state=state())
    sets = agent.prompt_sets
    agent("and the deadline?", invocation_state=state())
    agent("thanks", invocation_state=state())
    assert agent.prompt_sets == sets  # set on the first turn only
    assert model.system_prompts[1] == model.system_prompts[2] == model.system_prompts[0]
    assert "budget is 2M dollars" in model.system_prompts[2]


def test_a_prompt_changed_between_turns_is_set_again_with_the_memories(fake_store) -> None:
    fake_store.add(Scope("alice", "acme", "orchestrator"), "The user's project budget is 2M dollars.")
    model = ScriptedModel(default_reply="ok")
    agent, _ = make_agent(fake_store, model)
    agent("what is my budget?", invocation_state=state())
    agent.system_prompt = "Answer in French.\n\n{memory_context}"
    agent("and the deadline?", invocation_state=state())
    assert model.system_prompts[1].startswith("Answer in French.")
    assert "budget is 2M dollars" in model.system_prompts[1]
    agent.system_prompt_content[0]["text"] += "\n\nKeep it short."  # the agent's own block, edited in place
    agent("thanks", invocation_state=state())
    assert model.system_prompts[2].endswith("Keep it short.")
    assert "budget is 2M dollars" in model.system_prompts[2]


def test_a_later_turn_does_not_check_the_identity_again(fake_store, monkeypatch) -> None:
    checked: list[str] = []
    check = plugin_module.check_storable_identity
    monkeypatch.setattr(plugin_module, "check_storable_identity",
                        lambda user_id, *args, **kwargs: checked.append(user_id) or check(user_id, *args, **kwargs))
    agent, _ = make_agent(fake_store, ScriptedModel(default_reply="ok"))
    for _ in range(3):
        agent("hello", invocation_state=state())
    assert checked.count("alice") == 1


def test_another_identity_is_checked_after_one_that_passed(fake_store) -> None:
    agent, plugin = make_agent(fake_store, ScriptedModel(default_reply="ok"))
    agent("hello", invocation_state=state())
    with pytest.raises(IdentityTooLong):
        agent("hello", invocation_state=state("conv-2", user="u" * 4000))
    assert plugin.metrics["identity_invalid"] == 1
    agent("hello again", invocation_state=state())  # the identity that passed still serves


def test_a_later_turn_names_no_user_for_spans_that_do_not_record(fake_store, make_pipeline, monkeypatch) -> None:
    named: list[str] = []
    monkeypatch.setattr(telemetry, "_user_hasher", lambda user_id: named.append(user_id) or "pseudonym")
    assert not telemetry.recording()  # no tracer provider in the unit tests
    pipeline = make_pipeline(fake_store, checkpoint_interval=60)  # queued, written after the test
    agent, plugin = make_agent(fake_store, ScriptedModel(default_reply="ok"), pipeline)
    agent("hello", invocation_state=state())
    before = len(named)
    agent("and then?", invocation_state=state())
    agent("thanks", invocation_state=state())
    assert len(named) == before
    assert plugin.metrics["checkpoints"] == 3
