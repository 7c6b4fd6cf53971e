"""The README's "Use the memory in your own Strands agent" examples run as written (local
backend, no AWS), in order and in one namespace, with a scripted model standing in for ``model``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_model import ModelCall, ScriptedModel

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Use the memory in your own Strands agent"


class ReadmeModel(ScriptedModel):
    """Answers "OK"; a ModelExtractor request gets the user's statements as facts."""

    def _reply(self, call: ModelCall) -> Any:
        if "extract durable facts" in (call.system_prompt or ""):
            lines = [line.split(":", 1)[1].strip() for line in call.last_user_text.splitlines()
                     if line.startswith("user:")]
            return json.dumps([{"content": line} for line in lines])
        return "OK"


def readme_examples() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


def test_the_section_has_the_four_examples() -> None:
    blocks = readme_examples()
    assert len(blocks) == 4
    assert ["create_store" in blocks[0], "MemoryPlugin" in blocks[1], "S3VectorMemoryPlugin" in blocks[2],
            "StrandsMemoryStore" in blocks[3]] == [True] * 4


def test_the_examples_run_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' temporary directories
    namespace: dict[str, Any] = {"model": ReadmeModel(), "__name__": "readme"}
    outputs = []
    for block in readme_examples():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
        outputs.append(out.getvalue())
    stored, plugin, seed, strands_store = outputs
    assert re.search(r"^\d\.\d\d The project codename is Bluebird", stored, flags=re.M)
    assert "injected: ['sum-" in plugin  # the Lisbon summary came back in the next conversation
    assert "Q4 budget is 2M dollars" in seed
    assert "I prefer window seats on long flights." in strands_store


def multi_agent_plugin_expression() -> str:
    """The read-only plugin the "Multi-agent patterns" paragraph gives node agents."""
    text = README.read_text()
    paragraph = text[text.index("Multi-agent patterns:"):]
    paragraph = paragraph[: paragraph.index("\n\n")]
    return re.search(r"`(MemoryPlugin\(store,[^`]*\))`", paragraph, flags=re.S).group(1)


def test_the_multi_agent_advice_gives_swarm_and_graph_nodes_the_recorded_memories(tmp_path: Path) -> None:
    """The conversation is recorded by the agent in front (named ``front``); node agents built
    with the README's read-only plugin get its memories in a Swarm and in a Graph."""
    from strands import Agent
    from strands.multiagent import GraphBuilder, Swarm

    from memory import Invocation, LocalEmbedder, LocalOutbox, MemoryPlugin, Summarizer, SummaryPipeline, create_store

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path / "index")
    model = ScriptedModel([], default_reply="OK")
    pipeline = SummaryPipeline(store, LocalOutbox(tmp_path / "outbox"), Summarizer(model))
    front = Agent(model=model, name="front", callback_handler=None, plugins=[MemoryPlugin(store, pipeline=pipeline)])
    front("I moved to Lisbon last month.", invocation_state=Invocation("alice", "conv-1", "tenant-001", True).to_state())
    assert pipeline.wait(timeout=30)
    expression = multi_agent_plugin_expression()

    def node(name: str) -> Agent:
        plugin = eval(expression, {"MemoryPlugin": MemoryPlugin, "store": store})  # noqa: S307 - our own README
        return Agent(model=model, name=name, callback_handler=None, plugins=[plugin],
                     system_prompt=f"You are the {name}.\n\n{{memory_context}}")

    builder = GraphBuilder()
    builder.add_node(node("drafter"), "drafter")
    builder.add_node(node("reviewer"), "reviewer")
    builder.add_edge("drafter", "reviewer")
    builder.set_max_node_executions(2)
    state = Invocation("alice", "conv-2", "tenant-001").to_state()
    for team in (Swarm([node("planner"), node("writer")]), builder.build()):
        model.calls.clear()
        assert str(team("Where did I move to last month?", invocation_state=state).status) == "Status.COMPLETED"
        assert model.calls and all("I moved to Lisbon" in (c.system_prompt or "") for c in model.calls)


FLUSH_ADVICE = "`await planner.memory_manager.flush()`"


@pytest.mark.parametrize("flush", [False, True])
async def test_facts_extracted_after_an_async_call_are_written_once_the_manager_is_flushed(
    tmp_path: Path, flush: bool
) -> None:
    """A synchronous call waits for Strands' extraction; after ``invoke_async`` it runs on the
    caller's loop, and a loop that ends first cancels it: the README tells async callers to flush."""
    from strands import Agent
    from strands.memory import ExtractionConfig, InvocationTrigger, ModelExtractor

    from memory import FencedMemoryManager, LocalEmbedder, Scope, StrandsMemoryStore, create_store

    assert FLUSH_ADVICE in README.read_text()
    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path)
    long_term = StrandsMemoryStore(store, tenant_id="tenant-001", user_id="alice", agent_name="planner",
                                   extraction=ExtractionConfig(trigger=InvocationTrigger(), extractor=ModelExtractor()))
    planner = Agent(model=ReadmeModel(), name="planner", callback_handler=None,
                    memory_manager=FencedMemoryManager(stores=[long_term]))

    def in_a_loop_of_its_own() -> None:  # as asyncio.run(main()) in a script
        async def main() -> None:
            await planner.invoke_async("I prefer window seats on long flights.")
            if flush:
                assert planner.memory_manager is not None
                await planner.memory_manager.flush()

        asyncio.run(main())

    await asyncio.to_thread(in_a_loop_of_its_own)
    facts = [m.content for m in store.list(Scope("alice", "tenant-001", "planner"))]
    assert facts == (["I prefer window seats on long flights."] if flush else [])


class FlakyDigests:
    """A summarizer whose first ``failures`` digests fail (a throttled model), then ``inner``'s."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def digest(self, turns: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("throttled")
        return self.inner.digest(turns)


def test_the_readme_pipeline_retries_a_summary_whose_attempts_ran_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The README's MemoryPlugin wiring starts the pipeline's sweeper: a summary that failed
    every attempt of a round (a model outage) is retried, not left in the outbox."""
    from memory import RetryPolicy, Scope

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace: dict[str, Any] = {"model": ReadmeModel(), "__name__": "readme"}
    with contextlib.redirect_stdout(io.StringIO()):
        for block in readme_examples()[:2]:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    pipeline, plugin, agent, Invocation = (namespace[n] for n in ("pipeline", "plugin", "agent", "Invocation"))
    plugin.end_conversation()  # the README's last conversation: summarized before the outage
    assert pipeline.wait(timeout=30)
    pipeline.retry = RetryPolicy(base_delay=0.0, max_delay=0.0, sweep_base_delay=0.05)
    pipeline.summarizer = FlakyDigests(pipeline.summarizer, failures=pipeline.retry.max_attempts)
    agent("My sister lives in Oslo.", invocation_state=Invocation("alice", "conv-9", "tenant-001", True).to_state())
    stored = [m for m in namespace["store"].list(Scope("alice", "tenant-001", "assistant")) if "Oslo" in m.content]
    deadline = time.monotonic() + 10
    while not stored and time.monotonic() < deadline:
        time.sleep(0.05)
        stored = [m for m in namespace["store"].list(Scope("alice", "tenant-001", "assistant")) if "Oslo" in m.content]
    assert stored and pipeline.summarizer.failures == 0


def test_an_agent_passed_as_a_tool_runs_without_memory_and_the_orchestrators_tool_passes_identity(
    tmp_path: Path,
) -> None:
    """As the README says: Strands calls an agent given as a tool without ``invocation_state``;
    ``agent.orchestrator.specialist_tool`` forwards the caller's identity."""
    from strands import Agent

    from agent.orchestrator import specialist_tool
    from memory import Invocation, LocalEmbedder, MemoryPlugin, create_store
    from tests.support.scripted_model import ToolCall

    store = create_store(backend="local", tenancy="multi", embedder=LocalEmbedder(), local_dir=tmp_path)
    state = Invocation("alice", "conv-1", "tenant-001").to_state()
    for forwarded in (False, True):
        plugin = MemoryPlugin(store, pipeline=None, summarize=False, read_agent_name="front")
        specialist = Agent(model=ScriptedModel([], default_reply="found"), name="researcher", plugins=[plugin],
                           callback_handler=None)
        tool = specialist_tool(specialist, "Researches.") if forwarded else specialist
        front = Agent(model=ScriptedModel([ToolCall("researcher", {"input": "Lisbon?"}), "done"]), name="front",
                      tools=[tool], callback_handler=None)
        front("Ask the researcher.", invocation_state=state)
        assert (plugin.metrics["identity_missing"], plugin.metrics["conversations"]) == ((0, 1) if forwarded else (1, 0))
