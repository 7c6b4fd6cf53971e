"""The first turn's retrieval query in Strands' multi-agent patterns: the user's request, not the
frame the framework writes around it (the real Swarm and Graph build the node inputs here)."""

from __future__ import annotations

from typing import Any

from strands import Agent
from strands.multiagent import GraphBuilder, Swarm

from memory.plugin.invocation import Invocation
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.query import retrieval_query
from tests.support.scripted_model import ScriptedModel, ToolCall

TASK = "Where did I move to last month?"


def node(name: str, store: Any, model: ScriptedModel, description: str | None = None) -> Agent:
    """A node agent with the README's read-only plugin (memories of the agent in front)."""
    plugin = MemoryPlugin(store, pipeline=None, summarize=False, read_agent_name="front")
    return Agent(model=model, name=name, description=description, callback_handler=None, plugins=[plugin],
                 system_prompt=f"You are the {name}.\n\n{{memory_context}}")


def queries(store: Any) -> list[str]:
    return [query for _, query, _ in store.retrieve_calls]


def drafter_then_reviewer(store: Any, model: ScriptedModel) -> Any:
    """A Graph of two nodes, the reviewer getting the drafter's output."""
    builder = GraphBuilder()
    builder.add_node(node("drafter", store, model), "drafter")
    builder.add_node(node("reviewer", store, model), "reviewer")
    builder.add_edge("drafter", "reviewer")
    builder.set_max_node_executions(2)
    return builder.build()


def test_swarm_nodes_query_the_users_request_not_the_swarms_frame(fake_store) -> None:
    """The second node's input also carries a handoff message, the first node's name and the
    coordination instructions: neither node's query holds any of it."""
    model = ScriptedModel([ToolCall("handoff_to_agent", {"agent_name": "writer", "message": "Draft the answer."}),
                           "Handing over.", "Lisbon."])
    swarm = Swarm([node("planner", fake_store, model, "Plans the work."), node("writer", fake_store, model)])
    result = swarm(TASK, invocation_state=Invocation("alice", "conv-1", "acme").to_state())
    assert str(result.status) == "Status.COMPLETED"
    assert [n.node_id for n in result.node_history] == ["planner", "writer"]
    first_inputs = [c.messages[0]["content"][0]["text"] for c in model.calls if len(c.messages) == 1]
    assert all(t.startswith("Context:\n") and "Other agents available" in t for t in first_inputs)  # framed
    assert any("Handoff Message: Draft the answer." in t for t in first_inputs)
    assert queries(fake_store) == [TASK, TASK]


def test_a_swarm_task_given_as_content_blocks_is_queried_by_its_text(fake_store) -> None:
    model = ScriptedModel(default_reply="Lisbon.")
    swarm = Swarm([node("planner", fake_store, model), node("writer", fake_store, model)])
    swarm([{"text": TASK}], invocation_state=Invocation("alice", "conv-1", "acme").to_state())
    assert queries(fake_store) == [TASK]


def test_a_graph_node_after_another_queries_the_original_task_not_its_inputs(fake_store) -> None:
    model = ScriptedModel(["You moved somewhere warm, I think.", "Lisbon."])
    result = drafter_then_reviewer(fake_store, model)(TASK, invocation_state=Invocation("alice", "conv-1", "acme").to_state())
    assert str(result.status) == "Status.COMPLETED"
    reviewer_input = " ".join(b["text"] for b in model.calls[1].messages[0]["content"])
    assert "Inputs from previous nodes" in reviewer_input and "somewhere warm" in reviewer_input
    assert queries(fake_store) == [TASK, TASK]


def test_other_inputs_are_queried_whole_even_when_they_look_like_a_frame() -> None:
    """Only the frame's own shape is unwrapped: a user's text merely starting with ``Context:``
    (no section the framework writes after the request) is the query as it stands."""
    typed = "Context:\nUser Request: remind me of the budget\n\nThanks!"
    assert retrieval_query([{"role": "user", "content": [{"text": typed}]}]) == typed
    graph_like = [{"text": "Original Task: plan the trip"}, {"text": "and the budget"}]
    assert retrieval_query([{"role": "user", "content": graph_like}]) == "Original Task: plan the trip and the budget"
    assert retrieval_query([{"role": "assistant", "content": [{"text": "Context:\nUser Request: x\n\n"
                                                                        "Other agents available for collaboration:"}]}]) == ""


IMAGE = {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n\x1a\n"}}}


def test_a_graph_task_without_text_queries_nothing_not_the_other_nodes_outputs(fake_store) -> None:
    """A task of images only has no words to search by: the node after another found no request
    in the frame and queried its whole input instead, i.e. the other node's output and the
    frame's headings."""
    model = ScriptedModel(["You moved somewhere warm, I think.", "Lisbon."])
    result = drafter_then_reviewer(fake_store, model)([IMAGE], invocation_state=Invocation("alice", "conv-1", "acme").to_state())
    assert str(result.status) == "Status.COMPLETED"
    assert "somewhere warm" in " ".join(b.get("text", "") for b in model.calls[1].messages[0]["content"])
    assert queries(fake_store) == []  # neither node had words of the user's to search by


def test_a_swarm_task_without_text_queries_nothing_not_the_frames_placeholder(fake_store) -> None:
    """Swarm writes ``User Request: Multi-modal task`` for a task of content blocks: with no text
    among them, that placeholder of the framework's was the query."""
    model = ScriptedModel(default_reply="Lisbon.")
    swarm = Swarm([node("planner", fake_store, model), node("writer", fake_store, model)])
    swarm([IMAGE], invocation_state=Invocation("alice", "conv-1", "acme").to_state())
    assert "User Request: Multi-modal task" in model.calls[0].messages[0]["content"][0]["text"]
    assert queries(fake_store) == []
