"""The specialist tool: what the model and Strands see is what ``@tool`` builds, built once per process."""

from __future__ import annotations

import json
from typing import Any

import pytest
from strands import ToolContext, tool
from strands.tools.decorator import DecoratedFunctionTool, FunctionToolMetadata

from agent.orchestrator import SPECIALISTS, AgentSpec, build_conversation, specialist_tool
from memory.plugin.invocation import Invocation, identity_state
from tests.support.scripted_model import ScriptedModel

STATE = Invocation("alice", "conv-1", "tenant-a").to_state()


class FakeSpecialist:
    """Records the ``invocation_state`` each call is given; answers ``reply`` or raises ``error``."""

    def __init__(self, name: str, reply: str = "  found it \n", error: Exception | None = None) -> None:
        self.name, self.reply, self.error = name, reply, error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def invoke_async(self, prompt: str, *, invocation_state: dict[str, Any]) -> str:
        self.calls.append((prompt, invocation_state))
        if self.error is not None:
            raise self.error
        return self.reply


def decorated_reference(specialist: Any, description: str) -> DecoratedFunctionTool:
    """The tool as ``@tool`` built it for every session before the spec was cached (the reference)."""

    async def run(input: str, tool_context: ToolContext) -> str:  # noqa: A002 - tool schema name
        state = identity_state(tool_context.invocation_state)
        result = await specialist.invoke_async(input, invocation_state=state)
        return str(result).strip()

    run.__doc__ = f"""{description}

    Args:
        input: The complete request for the specialist.
    """
    return tool(name=specialist.name, description=description, context=True)(run)


async def call(agent_tool: Any, tool_input: Any) -> Any:
    """The tool's result for one call, invoked as an orchestrator's agent loop would."""
    state = {**STATE, "agent": object(), "request_id": "r-1", "secret": "not for the specialist"}
    events = [e async for e in agent_tool.stream({"toolUseId": "t-1", "name": agent_tool.tool_name,
                                                   "input": tool_input}, state)]
    return events[-1].tool_result


@pytest.mark.parametrize("spec", SPECIALISTS, ids=lambda spec: spec.name)
def test_the_tool_spec_is_byte_identical_to_what_the_decorator_builds(spec: AgentSpec) -> None:
    built = specialist_tool(FakeSpecialist(spec.name), spec.description)  # type: ignore[arg-type]
    reference = decorated_reference(FakeSpecialist(spec.name), spec.description)
    assert json.dumps(built.tool_spec) == json.dumps(reference.tool_spec)  # keys in the same order too
    assert (built.tool_name, built.tool_type, built.__name__, built.__doc__) == (
        reference.tool_name, reference.tool_type, reference.__name__, reference.__doc__)
    assert built.get_display_properties() == reference.get_display_properties()


@pytest.mark.parametrize("tool_input", [{"input": "tidal energy?"}, {"input": "x", "user_id": "mallory"}, {}, {"input": 3}])
@pytest.mark.parametrize("error", [None, RuntimeError("boom")])
async def test_results_and_errors_are_those_of_the_decorated_tool(tool_input: Any, error: Exception | None) -> None:
    built_specialist, reference_specialist = FakeSpecialist("s", error=error), FakeSpecialist("s", error=error)
    built = await call(specialist_tool(built_specialist, "Researches."), tool_input)  # type: ignore[arg-type]
    assert built == await call(decorated_reference(reference_specialist, "Researches."), tool_input)
    assert built_specialist.calls == reference_specialist.calls
    assert all(state == STATE for _, state in built_specialist.calls)  # the identity keys only


async def test_each_sessions_tool_calls_its_own_specialist() -> None:
    first, second = FakeSpecialist("s", reply="first"), FakeSpecialist("s", reply="second")
    first_tool = specialist_tool(first, "Researches.")  # type: ignore[arg-type]
    second_tool = specialist_tool(second, "Researches.")  # type: ignore[arg-type]
    assert first_tool.tool_spec == second_tool.tool_spec and first_tool.tool_spec is not second_tool.tool_spec
    assert (await call(second_tool, {"input": "b"}))["content"] == [{"text": "second"}]
    assert (await call(first_tool, {"input": "a"}))["content"] == [{"text": "first"}]
    assert (first.calls[0][0], second.calls[0][0]) == ("a", "b")


def test_the_spec_is_built_once_per_process_not_per_session(monkeypatch: pytest.MonkeyPatch) -> None:
    """``@tool``'s pydantic model and JSON schema (~1.2 ms) were built for every new session."""
    built: list[str] = []
    original = FunctionToolMetadata.__init__

    def counting_init(self: FunctionToolMetadata, func: Any, context_param: str | None = None) -> None:
        built.append(func.__module__)
        original(self, func, context_param)

    monkeypatch.setattr(FunctionToolMetadata, "__init__", counting_init)
    specialists = [AgentSpec("once_specialist", "You research. {memory_context}", "Researches, counted once.")]
    for _ in range(3):
        build_conversation(ScriptedModel([]), None, specialists=specialists)
    assert built.count("agent.orchestrator") == 1
