"""LocalLlamaModel without llama-cpp: message formatting, event conversion, tool rules, locking."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import types
from typing import Any, Iterator

import pytest
from pydantic import BaseModel
from strands import Agent, tool
from strands.types.exceptions import ContextWindowOverflowException

from agent import local_llm
from agent.local_llm import (
    JSON_STRING_MAX_LENGTH,
    MAX_QUOTED_MEMORIES,
    MEMORY_ANSWER_HEADER,
    NO_MEMORY_ANSWER,
    LocalLlamaModel,
    bounded_schema,
    explicit_tool_call,
    forced_tool,
    format_messages,
    grounded_answer,
)

MEMORY_SPEC = {
    "name": "memory_tool",
    "description": "Search the user's long-term memory.",
    "inputSchema": {
        "json": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
            "required": ["query"],
        }
    },
}
OTHER_SPEC = {
    "name": "research_specialist",
    "description": "Answers research questions.",
    "inputSchema": {"json": {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}},
}


class FakeLlama:
    """Stands in for ``llama_cpp.Llama``: scripted replies, records requests, detects overlap."""

    def __init__(self, replies: list[Any] | None = None, *, delay: float = 0.0) -> None:
        self.replies = list(replies or [])
        self.requests: list[dict[str, Any]] = []
        self.delay = delay
        self.active = 0
        self.max_active = 0
        self._guard = threading.Lock()

    def close(self) -> None:
        """``Llama.close``: what ``local_llm`` calls on a shared model at exit."""

    def _enter(self) -> None:
        with self._guard:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._guard:
            self.active -= 1

    def create_chat_completion(self, **request: Any) -> Any:
        self.requests.append(request)
        reply = self.replies.pop(0) if self.replies else "ok"
        if isinstance(reply, Exception):
            raise reply
        if not request.get("stream"):
            return {"choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]}
        return self._stream(reply)

    def _stream(self, reply: Any) -> Iterator[dict[str, Any]]:
        text, finish = reply if isinstance(reply, tuple) else (reply, "stop")
        self._enter()
        try:
            yield {"choices": [{"delta": {"role": "assistant"}, "finish_reason": None}]}
            for word in text.split(" "):
                time.sleep(self.delay)
                yield {"choices": [{"delta": {"content": word + " "}, "finish_reason": None}]}
            yield {"choices": [{"delta": {}, "finish_reason": finish}]}
        finally:
            self._leave()


async def collect(model: LocalLlamaModel, messages: list, **kwargs: Any) -> list[dict]:
    return [event async for event in model.stream(messages, **kwargs)]


def user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


# ------------------------------------------------------------------ formatting


def test_format_messages_renders_tool_traffic_and_merges_roles() -> None:
    messages = [
        user("hello"),
        {"role": "user", "content": [{"text": "again"}, {"image": {"format": "png", "source": {"bytes": b"x"}}}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "memory_tool", "input": {"query": "colour"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "status": "success",
                                                      "content": [{"text": "blue"}, {"json": {"n": 1}}]}}]},
    ]
    chat = format_messages(messages, "be brief")
    assert chat == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello\nagain"},
        {"role": "assistant", "content": '(calling tool memory_tool with {"query": "colour"})'},
        {"role": "user", "content": 'Tool memory_tool returned:\nblue\n{"n": 1}'},
    ]


def test_format_messages_without_system_prompt_skips_empty_messages() -> None:
    chat = format_messages([{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": b""}}}]},
                            user("hi")])
    assert chat == [{"role": "user", "content": "hi"}]


# ------------------------------------------------------------------ tool rules


@pytest.mark.parametrize(
    ("text", "query"),
    [
        ("Search my memory for my favourite colour.", "my favourite colour"),
        ("please check your memories about the Q4 budget?", "the Q4 budget"),
        ("Look up my memory", "Look up my memory"),
    ],
)
def test_explicit_request_calls_the_memory_tool(text: str, query: str) -> None:
    call = explicit_tool_call([user(text)], [OTHER_SPEC, MEMORY_SPEC], r"\b(?:search|check|look\s+up)\b.{0,40}\bmemor")
    assert call is not None
    spec, arguments = call
    assert spec["name"] == "memory_tool"
    assert arguments == {"query": query}


def test_tool_named_in_message_wins() -> None:
    call = explicit_tool_call([user("ask research_specialist about rivers")], [MEMORY_SPEC, OTHER_SPEC], "never")
    assert call is not None and call[0]["name"] == "research_specialist"
    assert call[1] == {"question": "rivers"}


@pytest.mark.parametrize(
    ("messages", "specs"),
    [
        ([user("what is my favourite colour?")], [MEMORY_SPEC]),  # no explicit request
        ([user("search my memory for x")], [OTHER_SPEC]),  # no memory tool
        ([user("search my memory for x")], None),  # no tools at all
        ([{"role": "user", "content": [{"toolResult": {"toolUseId": "t", "status": "success",
                                                        "content": [{"text": "search my memory for x"}]}}]}],
         [MEMORY_SPEC]),  # answering a tool result, never loop
    ],
)
def test_no_tool_call_without_explicit_request(messages: list, specs: list | None) -> None:
    from agent.local_llm import DEFAULT_TOOL_TRIGGER

    assert explicit_tool_call(messages, specs, DEFAULT_TOOL_TRIGGER) is None


def test_default_trigger_matches_demo_phrasing() -> None:
    from agent.local_llm import DEFAULT_TOOL_TRIGGER

    call = explicit_tool_call([user("Use your memory tool: search my memories for the launch date")],
                              [MEMORY_SPEC], DEFAULT_TOOL_TRIGGER)
    assert call is not None and call[1] == {"query": "the launch date"}


def test_forced_tool_choice() -> None:
    assert forced_tool([MEMORY_SPEC, OTHER_SPEC], {"tool": {"name": "research_specialist"}}) is OTHER_SPEC
    assert forced_tool([OTHER_SPEC, MEMORY_SPEC], {"any": {}}) is OTHER_SPEC
    assert forced_tool([MEMORY_SPEC], {"auto": {}}) is None
    assert forced_tool(None, {"any": {}}) is None


# ------------------------------------------------------------------ streaming


async def test_stream_emits_strands_text_events() -> None:
    fake = FakeLlama(["The sky is blue"])
    model = LocalLlamaModel(llama=fake, max_tokens=17, temperature=0.5)
    events = await collect(model, [user("colour?")], system_prompt="sys")

    kinds = [next(iter(e)) for e in events]
    assert kinds == ["messageStart", "contentBlockStart", *["contentBlockDelta"] * 4,
                     "contentBlockStop", "messageStop", "metadata"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "The sky is blue "
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}
    usage = events[-1]["metadata"]["usage"]
    assert usage["outputTokens"] == 4 and usage["totalTokens"] == usage["inputTokens"] + 4
    request = fake.requests[0]
    assert request["stream"] is True and request["max_tokens"] == 17 and request["temperature"] == 0.5
    assert request["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "colour?"}]


@pytest.mark.parametrize(("fail", "reason"), [(False, "end_turn"), (True, "max_tokens")])
async def test_truncated_generation_stop_reason(fail: bool, reason: str) -> None:
    model = LocalLlamaModel(llama=FakeLlama([("rambling on", "length")]), fail_on_max_tokens=fail)
    events = await collect(model, [user("talk")])
    assert {"messageStop": {"stopReason": reason}} in events


async def test_context_overflow_maps_to_strands_exception() -> None:
    fake = FakeLlama([ValueError("Requested tokens (9000) exceed context window of 4096")])
    with pytest.raises(ContextWindowOverflowException):
        await collect(LocalLlamaModel(llama=fake), [user("long")])


async def test_other_errors_propagate_unchanged() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        await collect(LocalLlamaModel(llama=FakeLlama([RuntimeError("boom")])), [user("x")])


async def test_concurrent_streams_never_overlap_on_one_llama() -> None:
    fake = FakeLlama(["a b c d e"] * 4, delay=0.01)
    model = LocalLlamaModel(llama=fake)
    results = await asyncio.gather(*(collect(model, [user(str(i))]) for i in range(4)))
    assert all({"messageStop": {"stopReason": "end_turn"}} in r for r in results)
    assert fake.max_active == 1


async def test_cancel_signal_stops_generation() -> None:
    fake = FakeLlama([" ".join(["w"] * 200)], delay=0.001)
    cancel = threading.Event()
    cancel.set()
    events = await collect(LocalLlamaModel(llama=fake), [user("x")], cancel_signal=cancel)
    assert not [e for e in events if "contentBlockDelta" in e]


def test_unknown_setting_rejected() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        LocalLlamaModel(llama=FakeLlama(), nonsense=1)


def test_update_config() -> None:
    model = LocalLlamaModel(llama=FakeLlama())
    model.update_config(max_tokens=5)
    assert model.get_config()["max_tokens"] == 5


# ------------------------------------------------------------------ with a real Strands agent


def test_agent_uses_memory_tool_on_explicit_request_then_answers_from_result() -> None:
    seen: list[str] = []

    @tool(name="memory_tool")
    def memory_tool(query: str) -> str:
        """Search the user's long-term memory."""
        seen.append(query)
        return "stored 2026-01-01: favourite colour is teal"

    fake = FakeLlama(["Your favourite colour is teal"])
    agent = Agent(model=LocalLlamaModel(llama=fake), tools=[memory_tool], name="orchestrator",
                  callback_handler=None)
    result = agent("Search my memory for my favourite colour")

    assert seen == ["my favourite colour"]
    assert str(result).strip() == "Your favourite colour is teal"
    # the single generation saw the tool result
    assert len(fake.requests) == 1
    assert "favourite colour is teal" in fake.requests[0]["messages"][-1]["content"]


def test_agent_without_explicit_request_ignores_tools() -> None:
    @tool(name="memory_tool")
    def memory_tool(query: str) -> str:
        """Search the user's long-term memory."""
        raise AssertionError("must not be called")

    agent = Agent(model=LocalLlamaModel(llama=FakeLlama(["hi there"])), tools=[memory_tool],
                  name="orchestrator", callback_handler=None)
    assert str(agent("hello")).strip() == "hi there"


class Colour(BaseModel):
    name: str
    hex: str


async def test_structured_output_is_grammar_constrained_and_validated() -> None:
    fake = FakeLlama([json.dumps({"name": "teal", "hex": "#008080"})])
    model = LocalLlamaModel(llama=fake)
    outputs = [e async for e in model.structured_output(Colour, [user("colour?")])]
    assert outputs[-1]["output"] == Colour(name="teal", hex="#008080")
    schema = fake.requests[0]["response_format"]["schema"]
    assert schema == bounded_schema(Colour.model_json_schema())
    assert schema["properties"]["name"]["maxLength"] == JSON_STRING_MAX_LENGTH
    assert fake.requests[0].get("stream") in (None, False)


def test_agent_structured_output_goes_through_forced_tool() -> None:
    # The small model answers in text first; Strands then forces the output tool, and that
    # forced call is generated under the tool schema's grammar.
    fake = FakeLlama(["teal is a colour", json.dumps({"name": "teal", "hex": "#008080"})])
    agent = Agent(model=LocalLlamaModel(llama=fake), name="orchestrator", callback_handler=None)
    result = agent("describe teal", structured_output_model=Colour)
    assert result.structured_output == Colour(name="teal", hex="#008080")
    assert "response_format" not in fake.requests[0]
    schema = fake.requests[1]["response_format"]["schema"]
    assert set(schema["properties"]) == {"name", "hex"}


async def test_invalid_json_raises_clearly() -> None:
    model = LocalLlamaModel(llama=FakeLlama(["not json"]))
    with pytest.raises(ValueError, match="invalid JSON"):
        [e async for e in model.structured_output(Colour, [user("x")])]


def test_bounded_schema_caps_free_strings_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "string", "maxLength": 5},
            "c": {"type": "string", "enum": ["x"]},
            "d": {"type": "array", "items": {"type": "string"}},
            "e": {"type": "integer"},
        },
    }
    bounded = bounded_schema(schema, 9)
    props = bounded["properties"]
    assert props["a"]["maxLength"] == 9 and props["b"]["maxLength"] == 5
    assert "maxLength" not in props["c"] and "maxLength" not in props["e"]
    assert props["d"]["items"]["maxLength"] == 9
    assert "maxLength" not in schema["properties"]["a"]  # the input is not modified


# ------------------------------------------------------------------ rule 3: answers about the user's past


BLOCK = (
    "You are helpful.\n<memory_context>\nheader\n"
    '<memory id="sum-1" stored_at="2026-11-29 10:00 UTC">My project Bluebird launches on March 3rd &amp; not later.</memory>\n'
    "</memory_context>"
)


async def test_personal_question_without_memory_gets_the_fixed_answer_not_the_model() -> None:
    fake = FakeLlama(["It launches on 2019-03-28."])  # what a 135M model invents
    events = await collect(LocalLlamaModel(llama=fake), [user("What is the launch date of my project?")],
                           system_prompt="You are helpful.")
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == NO_MEMORY_ANSWER
    assert fake.requests == []
    assert events[-2] == {"messageStop": {"stopReason": "end_turn"}}


async def test_personal_question_quotes_the_injected_memory_with_its_date() -> None:
    fake = FakeLlama(["The launch is on March 2nd."])
    events = await collect(LocalLlamaModel(llama=fake), [user("When does my project launch?")], system_prompt=BLOCK)
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == f"{MEMORY_ANSWER_HEADER}\n- (2026-11-29 10:00 UTC) My project Bluebird launches on March 3rd & not later."
    assert fake.requests == []


def test_other_turns_are_left_to_the_model() -> None:
    assert grounded_answer([user("Hello, how are you today?")], None, BLOCK) is None  # not about the user
    assert grounded_answer([user("My project launches in March.")], None, None) is None  # a statement
    earlier = [user("My name is Ann."), {"role": "assistant", "content": [{"text": "Hi Ann"}]}, user("What is my name?")]
    assert grounded_answer(earlier, None, None) is None  # the conversation itself holds it
    assert grounded_answer(earlier, None, BLOCK) is not None  # memories are still quoted


def test_at_most_three_memories_are_quoted() -> None:
    block = "".join(f'<memory id="m{i}" stored_at="d{i}">fact {i}</memory>' for i in range(5))
    answer = grounded_answer([user("what do I like?")], None, block)
    assert answer is not None and answer.count("\n- ") == MAX_QUOTED_MEMORIES
    assert "fact 0" in answer and "fact 3" not in answer


def tool_turn(result_text: str, name: str = "memory_tool") -> list[dict]:
    return [
        user("Search my memory for my project codename"),
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": name, "input": {"query": "x"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "status": "success",
                                                      "content": [{"text": result_text}]}}]},
    ]


def test_memory_tool_results_are_quoted_or_reported_empty() -> None:
    quoted = grounded_answer(tool_turn(BLOCK), [MEMORY_SPEC], None)
    assert quoted is not None and "Bluebird launches on March 3rd" in quoted and "header" not in quoted
    assert grounded_answer(tool_turn("No matching memories found."), [MEMORY_SPEC], None) == NO_MEMORY_ANSWER
    # another tool's result is the model's to phrase
    assert grounded_answer(tool_turn("rivers are long", OTHER_SPEC["name"]), [MEMORY_SPEC, OTHER_SPEC], None) is None


def test_grounded_answers_can_be_switched_off() -> None:
    fake = FakeLlama(["free text"])
    agent = Agent(model=LocalLlamaModel(llama=fake, grounded_answers=False), name="orchestrator",
                  callback_handler=None)
    assert str(agent("What is my name?")).strip() == "free text"


def test_agent_recall_turn_answers_with_the_recalled_memory() -> None:
    @tool(name="memory_tool")
    def memory_tool(query: str) -> str:
        """Search the user's long-term memory."""
        return BLOCK

    fake = FakeLlama(["The memory block says: header"])
    agent = Agent(model=LocalLlamaModel(llama=fake), tools=[memory_tool], name="orchestrator", callback_handler=None)
    result = str(agent("Search my memory for my project codename")).strip()
    assert result.startswith(MEMORY_ANSWER_HEADER) and "March 3rd" in result
    assert fake.requests == []


# ------------------------------------------------------------------ loading through llama_runtime


def test_models_of_one_weights_file_share_one_loaded_llama(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    loaded: list[dict[str, Any]] = []

    class Llama(FakeLlama):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(["hello there"] * 3)
            loaded.append(kwargs)

    monkeypatch.setattr(local_llm.llama_runtime, "import_llama_cpp", lambda: types.SimpleNamespace(Llama=Llama))
    monkeypatch.setattr(local_llm, "_shared", {})
    path = str(tmp_path / "m.gguf")
    first, second = LocalLlamaModel(model_path=path, n_ctx=512), LocalLlamaModel(model_path=path, n_ctx=512)
    for model in (first, second):
        assert str(Agent(model=model, callback_handler=None)("hi")).strip() == "hello there"
    assert loaded == [{"model_path": path, "n_ctx": 512, "n_threads": None, "seed": 42, "verbose": False}]
    LocalLlamaModel(model_path=path, n_ctx=1024)._engine()  # another context size: its own instance
    assert len(loaded) == 2
