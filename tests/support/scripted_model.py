"""Deterministic Strands model providers for tests: no network, no LLM.

``ScriptedModel(steps, *, default_reply=None, summary_reply=None)``
    Replays ``steps`` in order, one per model call. A step is
      * ``str`` -- a plain text answer (stop reason ``end_turn``);
      * ``ToolCall(name, input, tool_use_id=None, text=None)`` -- a toolUse block (stop reason
        ``tool_use``), after a text block ``text`` if given (narration, as Claude streams before
        a tool call); the agent runs the tool and calls the model again, which consumes the next step;
      * an ``Exception`` instance -- raised from ``stream`` (simulates a provider failure);
      * a callable ``(ModelCall) -> str | ToolCall`` -- decides from what the model received.
    When the steps run out it answers ``default_reply``, or fails the test (AssertionError) if
    that is None. Summarization requests (system prompt carrying
    ``memory.pipeline.summarizer.SUMMARY_MARKER``) never consume steps: they get ``summary_reply`` or,
    if None, ``deterministic_summary`` of the transcript (in the ``SUMMARY:``/``FACTS:`` format,
    without facts, when the request asks for facts).

    Recording (thread-safe): ``calls`` (every chat call, a ``ModelCall`` with ``system_prompt``,
    ``messages`` deep-copied, ``tool_specs``), ``summary_calls`` (the summarization calls),
    ``system_prompts`` (the chat calls' system prompts, in order).

``EchoModel()`` -- for server end-to-end tests, also records ``calls``/``summary_calls``:
    * last user text starting with ``recall:`` -> a toolUse of ``memory_tool`` with
      ``{"query": <rest, stripped>}``; after the tool ran, it answers the tool result text;
    * a summarization request -> ``deterministic_summary`` (the user's lines, joined);
    * anything else -> ``ECHO: <last user text> | MEMORY: <fenced memory block of the system
      prompt, tags included, or "none">``.

``build_echo_model() -> Model`` -- factory for provider specs such as
``import:tests.support.scripted_model:build_echo_model``.

``build_plain_echo_model() -> Model`` -- for throughput benchmarks (``bench/bench_app.py``): answers
``ECHO: <last user text>`` whatever the system prompt holds, so the answer is the same with memory
on and off, and records nothing (a long run neither grows nor deep-copies every call).

``build_inventing_model() -> Model`` -- a ``ScriptedModel`` that answers every turn with a made-up
launch date (:data:`INVENTED_ANSWER`), as a small model without memory does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Sequence, Union

from strands.models import Model

from memory.plugin.context_block import extract_block
from memory.plugin.recall_tool import RECALL_TOOL_NAME
from memory.pipeline.summarizer import SUMMARY_MARKER, USER_PREFIX

__all__ = [
    "HANG_PREFIX",
    "EchoModel",
    "HangingEchoModel",
    "ModelCall",
    "PlainEchoModel",
    "ScriptedModel",
    "ToolCall",
    "build_echo_model",
    "build_hanging_echo_model",
    "build_plain_echo_model",
    "build_inventing_model",
    "deterministic_summary",
]


@dataclass(frozen=True)
class ToolCall:
    """A scripted toolUse reply."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)
    tool_use_id: str | None = None
    text: str | None = None  # streamed in the same message, before the toolUse block


@dataclass(frozen=True)
class ModelCall:
    """What one model call received."""

    system_prompt: str | None
    messages: list[dict[str, Any]]
    tool_specs: list[dict[str, Any]] | None

    @property
    def last_user_text(self) -> str:
        """Text of the last user message that has text (tool results skipped)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            texts = [b["text"] for b in message.get("content", []) if "text" in b]
            if texts:
                return " ".join(texts)
        return ""

    @property
    def last_tool_result_text(self) -> str | None:
        """Text of the tool result in the last message, or None if it is not a tool result."""
        if not self.messages:
            return None
        results = [b["toolResult"] for b in self.messages[-1].get("content", []) if "toolResult" in b]
        if not results:
            return None
        return "\n".join(c["text"] for r in results for c in r.get("content", []) if "text" in c)

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools offered to the model."""
        return [spec["name"] for spec in self.tool_specs or []]


Reply = Union[str, ToolCall]
Step = Union[Reply, BaseException, Callable[[ModelCall], Reply]]


def deterministic_summary(call: ModelCall) -> str:
    """The ``USER: `` lines of a summarization request's transcript, joined by spaces.

    When the request asks for facts (``FACTS_INSTRUCTIONS``), the reply follows its format with
    an empty ``FACTS:`` section, as a model that found no fact would answer.
    """
    text = call.last_user_text
    lines = [line[len(USER_PREFIX) :].strip() for line in text.splitlines() if line.startswith(USER_PREFIX)]
    summary = " ".join(lines)
    return f"SUMMARY:\n{summary}\nFACTS:" if "'FACTS:'" in (call.system_prompt or "") else summary


def _text_events(text: str) -> list[dict[str, Any]]:
    return [
        {"messageStart": {"role": "assistant"}},
        {"contentBlockStart": {"start": {}}},
        {"contentBlockDelta": {"delta": {"text": text}}},
        {"contentBlockStop": {}},
        {"messageStop": {"stopReason": "end_turn"}},
        _metadata(),
    ]


def _tool_events(call: ToolCall) -> list[dict[str, Any]]:
    tool_use_id = call.tool_use_id or f"tooluse_{uuid.uuid4().hex[:12]}"
    narration = _text_events(call.text)[1:4] if call.text else []
    return [
        {"messageStart": {"role": "assistant"}},
        *narration,
        {"contentBlockStart": {"start": {"toolUse": {"name": call.name, "toolUseId": tool_use_id}}}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(call.input)}}}},
        {"contentBlockStop": {}},
        {"messageStop": {"stopReason": "tool_use"}},
        _metadata(),
    ]


def _metadata() -> dict[str, Any]:
    return {
        "metadata": {
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 0},
        }
    }


class _RecordingModel(Model):
    """Shared plumbing: config, recording, summarization routing, event emission."""

    #: Whether calls are kept in ``calls`` / ``summary_calls`` (with deep copies of their input).
    record = True

    def __init__(self) -> None:
        self._config: dict[str, Any] = {"model_id": type(self).__name__}
        self._lock = threading.Lock()
        self.calls: list[ModelCall] = []
        self.summary_calls: list[ModelCall] = []

    @property
    def system_prompts(self) -> list[str | None]:
        """System prompts of the chat calls, in order."""
        return [c.system_prompt for c in self.calls]

    def update_config(self, **model_config: Any) -> None:
        self._config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)

    def structured_output(self, output_model: Any, prompt: Any, system_prompt: str | None = None, **kwargs: Any):  # type: ignore[override]
        raise NotImplementedError("scripted models do not produce structured output")

    async def stream(  # type: ignore[override]
        self,
        messages: Sequence[dict[str, Any]],
        tool_specs: list[dict[str, Any]] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        if self.record:
            call = ModelCall(system_prompt, copy.deepcopy(list(messages)), copy.deepcopy(tool_specs))
        else:
            call = ModelCall(system_prompt, list(messages), tool_specs)
        is_summary = bool(system_prompt) and SUMMARY_MARKER in system_prompt
        await self._before_reply(call)
        with self._lock:
            if self.record:
                (self.summary_calls if is_summary else self.calls).append(call)
            reply = self._summary(call) if is_summary else self._reply(call)
        if isinstance(reply, BaseException):
            raise reply
        for event in _tool_events(reply) if isinstance(reply, ToolCall) else _text_events(reply):
            yield event

    async def _before_reply(self, call: ModelCall) -> None:
        """Runs before the reply is chosen (``HangingEchoModel`` never returns from it)."""

    def _summary(self, call: ModelCall) -> Reply:
        return deterministic_summary(call)

    def _reply(self, call: ModelCall) -> Reply | BaseException:
        raise NotImplementedError


class ScriptedModel(_RecordingModel):
    """Replays scripted text replies, tool calls and failures; records what it received."""

    def __init__(
        self,
        steps: Sequence[Step] = (),
        *,
        default_reply: str | None = None,
        summary_reply: str | None = None,
    ) -> None:
        super().__init__()
        self._steps = list(steps)
        self.default_reply = default_reply
        self.summary_reply = summary_reply

    def add_steps(self, *steps: Step) -> None:
        """Append more steps to the script."""
        with self._lock:
            self._steps.extend(steps)

    def _summary(self, call: ModelCall) -> Reply:
        return self.summary_reply if self.summary_reply is not None else deterministic_summary(call)

    def _reply(self, call: ModelCall) -> Reply | BaseException:
        if not self._steps:
            if self.default_reply is None:
                raise AssertionError(f"ScriptedModel ran out of steps at call {len(self.calls)}")
            return self.default_reply
        step = self._steps.pop(0)
        if isinstance(step, (str, ToolCall, BaseException)):
            return step
        return step(call)


class EchoModel(_RecordingModel):
    """Deterministic echo model for end-to-end tests (see the module docstring)."""

    def _reply(self, call: ModelCall) -> Reply:
        tool_text = call.last_tool_result_text
        if tool_text is not None:
            return tool_text
        text = call.last_user_text.strip()
        if text.startswith("recall:"):
            return ToolCall(RECALL_TOOL_NAME, {"query": text[len("recall:") :].strip()})
        return f"ECHO: {text} | MEMORY: {extract_block(call.system_prompt) or 'none'}"


def build_echo_model() -> Model:
    """A fresh ``EchoModel`` (factory for ``import:tests.support.scripted_model:build_echo_model``)."""
    return EchoModel()


class PlainEchoModel(_RecordingModel):
    """Echoes the last user text only, recording nothing (see the module docstring)."""

    record = False

    def _reply(self, call: ModelCall) -> Reply:
        return f"ECHO: {call.last_user_text.strip()}"


def build_plain_echo_model() -> Model:
    """A fresh ``PlainEchoModel`` (``import:tests.support.scripted_model:build_plain_echo_model``)."""
    return PlainEchoModel()


INVENTED_ANSWER = "Your project launches on March 27th."


def build_inventing_model() -> Model:
    """A model that invents a date on every turn (``import:tests.support.scripted_model:build_inventing_model``)."""
    return ScriptedModel(default_reply=INVENTED_ANSWER)


#: A user text starting with this makes ``HangingEchoModel`` never answer.
HANG_PREFIX = "hang:"


#: A conversation with a user text starting with this gets a summary ``HangingEchoModel`` never writes.
HANG_SUMMARY_PREFIX = "hang-summary:"


class HangingEchoModel(EchoModel):
    """``EchoModel``, except that a last user text starting with :data:`HANG_PREFIX` never gets an
    answer: the call waits forever in a worker thread of the event loop's default executor, as a
    hung provider call does (Strands' ``BedrockModel`` streams there). So does the summary of a
    conversation with a user text starting with :data:`HANG_SUMMARY_PREFIX`."""

    async def _before_reply(self, call: ModelCall) -> None:
        is_summary = SUMMARY_MARKER in (call.system_prompt or "")
        if (is_summary and f"{USER_PREFIX}{HANG_SUMMARY_PREFIX}" in call.last_user_text) or (
            not is_summary and call.last_user_text.startswith(HANG_PREFIX)
        ):
            await asyncio.get_running_loop().run_in_executor(None, threading.Event().wait)


def build_hanging_echo_model() -> Model:
    """A fresh ``HangingEchoModel`` (``import:tests.support.scripted_model:build_hanging_echo_model``)."""
    return HangingEchoModel()
