"""Smoke test with the real SmolLM2 weights (skipped unless the ``local`` extra is installed)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from strands import Agent, tool

from agent.local_llm import local_model_unavailable

pytestmark = pytest.mark.skipif(local_model_unavailable() is not None, reason=str(local_model_unavailable()))


class Answer(BaseModel):
    colour: str


def test_real_model_answers_calls_tool_and_emits_schema_valid_json() -> None:
    from agent.chat_models import build_model

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


def test_a_test_run_that_loaded_the_model_ends_without_a_traceback_from_its_finalizer() -> None:
    """``make test`` ended with "Exception ignored in: Llama.__del__ ... TypeError: 'NoneType'
    object is not callable": the shared model was freed by the interpreter's last collection,
    after llama_cpp's functions were gone. These two tests in one run were enough to show it."""
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "tests/unit/agent/test_chat_models.py::test_is_small_local",
         "tests/unit/agent/test_local_smoke.py::test_real_model_answers_calls_tool_and_emits_schema_valid_json"],
        cwd=Path(__file__).resolve().parents[3], capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert "Exception ignored" not in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
