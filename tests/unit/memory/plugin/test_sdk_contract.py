"""What the plugin relies on from the Strands SDK beyond its public API, pinned so an SDK
upgrade that changes it fails here, loudly, instead of silently weakening the plugin."""

from __future__ import annotations

from strands import Agent

from memory.plugin.plugin import SDK_DEFAULT_AGENT_NAME, MemoryPlugin
from memory.plugin.recall_tool import RECALL_TOOL_NAME
from tests.support.scripted_model import ScriptedModel


def test_the_refused_default_name_is_the_one_the_sdk_gives_unnamed_agents() -> None:
    # The SDK keeps it in a private constant; the plugin repeats the value (it must refuse
    # agents that would all share one memory namespace). Compared through public behaviour:
    assert Agent(model=ScriptedModel(), callback_handler=None).name == SDK_DEFAULT_AGENT_NAME


def test_the_recall_tool_is_registered_through_the_public_tools_property(fake_store) -> None:
    plugin = MemoryPlugin(fake_store, pipeline=None)
    assert [t.tool_name for t in plugin.tools] == [RECALL_TOOL_NAME]
    agent = Agent(model=ScriptedModel(), name="a", plugins=[plugin], callback_handler=None)
    assert RECALL_TOOL_NAME in agent.tool_names


def test_recall_tool_can_be_left_out(fake_store) -> None:
    plugin = MemoryPlugin(fake_store, pipeline=None, recall_tool=False)
    agent = Agent(model=ScriptedModel(), name="a", plugins=[plugin], callback_handler=None)
    assert plugin.tools == [] and RECALL_TOOL_NAME not in agent.tool_names


def test_every_agent_call_starts_a_new_agent_invocation_record() -> None:
    # The plugin tells a hook's resumed pass (same call, input not the user's) from the next
    # call by ``agent.event_loop_metrics.latest_agent_invocation``: one per call.
    agent = Agent(model=ScriptedModel(default_reply="ok"), callback_handler=None)
    agent("one")
    first = agent.event_loop_metrics.latest_agent_invocation
    agent("two")
    assert first is not None and agent.event_loop_metrics.latest_agent_invocation is not first
