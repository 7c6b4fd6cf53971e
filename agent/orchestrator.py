"""The per-session Strands orchestrator: an ``orchestrator`` agent with specialist agents as tools.

Every agent has a stable unique name and, when memory is on, its own ``MemoryPlugin`` (which
injects memories into ``{memory_context}`` and wires the ``memory_tool`` recall tool). The
specialist tool forwards the caller's identity keys of ``invocation_state`` so the
specialist's plugin serves the same tenant, user and conversation as the orchestrator's.
Only the orchestrator's plugin summarizes the conversation: a specialist's "user" is the
orchestrator's model, so its plugin reads memories but never stores any; it reads the
orchestrator's (the user's past conversations), since nothing is stored under its own name.
The orchestrator runs tool calls one at a time (``SequentialToolExecutor``): a specialist is
one Agent, which refuses concurrent invocations, and the model may ask for it twice in one
message. Strands' own model retry strategy is off: the model's client already retries with
backoff (botocore: ``BEDROCK_MAX_ATTEMPTS``; the OpenAI client: ``OPENAI_MAX_RETRIES``), and
Strands' 6 attempts around it made a throttled turn 6 x 7 ConverseStream calls and 124 s of
pauses before the caller heard anything.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from strands import Agent, ToolContext
from strands.models import Model
from strands.tools.decorator import DecoratedFunctionTool, FunctionToolMetadata
from strands.tools.executors import SequentialToolExecutor
from strands.types.tools import ToolSpec

from memory.plugin.invocation import identity_state
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.recall_tool import RECALL_TOOL_NAME

logger = logging.getLogger(__name__)

ORCHESTRATOR_NAME = "orchestrator"
SPECIALIST_NAME = "research_specialist"

ORCHESTRATOR_PROMPT = """You are a helpful assistant with long-term memory of past conversations \
with this user. Answer directly when you can. For questions that need careful research or \
analysis, delegate to the research_specialist tool. When the user refers to something from an \
earlier conversation that is not below, search it with the memory_tool. Never make up facts about \
the user or earlier conversations: if neither the memories below, the memory_tool nor this \
conversation holds the answer, say that you don't remember it.

{memory_context}"""

SPECIALIST_PROMPT = """You are a research specialist. Give a precise, well-structured answer to \
the request you receive. Use the memory_tool when earlier conversations with this user may matter.

{memory_context}"""



class PluginFactory(Protocol):
    """Makes the memory plugin of one agent; ``summarize`` is False for specialists, which read
    the memories of the agent named ``read_agent_name`` (the orchestrator)."""

    def __call__(self, agent_name: str, *, summarize: bool, read_agent_name: str | None = None) -> MemoryPlugin:
        """A new plugin for the agent named ``agent_name``."""


@dataclass(frozen=True)
class AgentSpec:
    """A named agent: its name, its base system prompt and (for specialists) its tool description."""

    name: str
    prompt: str
    description: str = ""


SPECIALISTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        SPECIALIST_NAME,
        SPECIALIST_PROMPT,
        "Delegate a research or analysis request; give it the full request as input.",
    ),
)
#: Every tool the app's agents have: the specialists, and the recall tool of their memory plugins.
TOOL_NAMES = frozenset({RECALL_TOOL_NAME, *(spec.name for spec in SPECIALISTS)})
#: A specialist's tool: a Strands tool whose function returns the specialist's answer.
SpecialistTool = DecoratedFunctionTool[..., str]


def answer_text(result: Any) -> str:
    """A turn's answer: the text of its final assistant message (``AgentResult``'s ``str``)."""
    return str(result).strip()


class StreamedTurn:
    """One streamed turn: iterating it yields the text chunks of every model message of the
    turn, narration before a tool call included; ``answer`` is then set to the turn's answer,
    the final message's text, as the non-streamed turn answers (None until the turn is done).

    The text of each model message after the first one with text (e.g. the answer after a
    tool call) starts with a blank line, so two messages never read as one sentence.
    """

    def __init__(self, events: AsyncIterator[Any]) -> None:
        self._events = events
        self.answer: str | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[str]:
        wrote, apart = False, False
        async for event in self._events:
            if not isinstance(event, dict):
                continue
            chunk = event.get("data")
            if isinstance(chunk, str) and chunk:
                yield "\n\n" + chunk if apart else chunk
                wrote, apart = True, False
            elif "message" in event:  # a message of the turn is complete
                apart = wrote
            elif "result" in event:  # the turn's last event
                self.answer = answer_text(event["result"])


class Conversation:
    """One session's agents. Not thread-safe: the session registry serialises its requests."""

    def __init__(self, agent: Agent, plugins: Sequence[MemoryPlugin]) -> None:
        self.agent = agent
        self.plugins = tuple(plugins)

    async def ask(self, prompt: str, invocation_state: dict[str, Any]) -> str:
        """Run one turn and return the answer text."""
        result = await self.agent.invoke_async(prompt, invocation_state=dict(invocation_state))
        return answer_text(result)

    def stream(self, prompt: str, invocation_state: dict[str, Any]) -> StreamedTurn:
        """Run one turn as it is iterated: its text chunks as the model produces them, then its
        ``answer`` (what ``ask`` returns)."""
        return StreamedTurn(self.agent.stream_async(prompt, invocation_state=dict(invocation_state)))

    def memories_used(self) -> list[str]:
        """Ids of the memories injected or recalled in this conversation (every agent, in order)."""
        seen: dict[str, None] = {}
        for plugin in self.plugins:
            for memory_id in plugin.used_memory_ids:
                seen.setdefault(memory_id, None)
        return list(seen)

    def end_conversation(self) -> None:
        """Hand the conversation to the summary pipeline (durable before it returns).

        Only the orchestrator's plugin summarizes; specialists' plugins return at once.
        """
        errors = []
        for plugin in self.plugins:
            try:
                plugin.end_conversation()
            except Exception as exc:  # end the others anyway; report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]


def build_conversation(
    model: Model,
    plugin_factory: PluginFactory | None,
    *,
    specialists: Sequence[AgentSpec] = SPECIALISTS,
) -> Conversation:
    """A fresh orchestrator with its specialists, each with its own plugin (if memory is on)."""
    plugins: list[MemoryPlugin] = []

    def plugins_for(name: str, summarize: bool) -> list[MemoryPlugin]:
        if plugin_factory is None:
            return []
        if summarize:
            plugin = plugin_factory(name, summarize=True)
        else:  # a specialist: the orchestrator's memories, the only ones stored
            plugin = plugin_factory(name, summarize=False, read_agent_name=ORCHESTRATOR_NAME)
        plugins.append(plugin)
        return [plugin]

    tools, agents = [], []
    for spec in specialists:
        specialist = Agent(
            model=model,
            name=spec.name,
            system_prompt=spec.prompt,
            plugins=plugins_for(spec.name, summarize=False),
            callback_handler=None,
            retry_strategy=None,  # the model's client retries (see the module docstring)
        )
        agents.append(specialist)
        tools.append(specialist_tool(specialist, spec.description))
    agent = Agent(
        model=model,
        name=ORCHESTRATOR_NAME,
        system_prompt=ORCHESTRATOR_PROMPT,
        tools=tools,
        tool_executor=SequentialToolExecutor(),  # one specialist Agent serves one call at a time
        plugins=plugins_for(ORCHESTRATOR_NAME, summarize=True),
        callback_handler=None,
        retry_strategy=None,  # the model's client retries (see the module docstring)
    )
    if plugin_factory is None:  # no plugin fills the placeholder: remove it
        for a in [agent, *agents]:
            a.system_prompt = (a.system_prompt or "").replace("{memory_context}", "").strip()
    return Conversation(agent, plugins)


def specialist_tool(specialist: Agent, description: str) -> SpecialistTool:
    """Expose ``specialist`` as a tool named after it, forwarding the caller's identity keys."""
    spec, metadata = _tool_description(specialist.name, description)
    run = _tool_function(description, specialist.invoke_async)
    return DecoratedFunctionTool(specialist.name, copy.deepcopy(spec), run, metadata)


def _tool_function(description: str, invoke: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[str]]:
    """The tool's function: its signature and docstring are what the model sees."""

    async def run(input: str, tool_context: ToolContext) -> str:  # noqa: A002 - tool schema name
        state = identity_state(tool_context.invocation_state)  # identity and conversation only
        result = await invoke(input, invocation_state=state)
        return str(result).strip()

    run.__doc__ = f"""{description}

    Args:
        input: The complete request for the specialist.
    """
    return run


async def _unbound(prompt: str, *, invocation_state: dict[str, Any]) -> Any:
    raise RuntimeError("the description template of a specialist tool is never called")


@functools.lru_cache(maxsize=16)
def _tool_description(name: str, description: str) -> tuple[ToolSpec, FunctionToolMetadata]:
    """The tool spec and input model, built once per name and description (what ``@tool`` builds).

    ``@tool`` builds a ``FunctionToolMetadata`` (a pydantic input model and a JSON schema, most of
    a session's build time) from the function's signature and docstring only; every
    session's tool has the same ones, so they are built once and each session gets its own
    function (around its own specialist) with them.
    """
    metadata = FunctionToolMetadata(_tool_function(description, _unbound), "tool_context")
    spec = metadata.extract_metadata()
    spec["name"] = name
    spec["description"] = description
    return spec, metadata
