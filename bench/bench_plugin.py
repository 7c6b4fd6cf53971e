"""Added latency of MemoryPlugin per turn vs the same agent without it (scripted model, local backend).

Scenarios, each timed as one ``agent.invoke_async(prompt)`` on one long-lived event loop (as the
app runs invocations on the AgentCore worker loop, so the plugin's ``asyncio.to_thread`` calls
reuse the loop's threads; ``agent(prompt)`` would start a thread and a loop per call):

* first turn  -- a fresh conversation: the plugin embeds the prompt, queries the LocalIndex
  (seeded with ``--memories`` memories over 20 users), fills the system prompt and queues
  the transcript's checkpoint (written to the outbox in the background, not timed here);
* later turn  -- a turn of a running conversation: the kept memory block is re-applied and
  the transcript so far is queued as the conversation's checkpoint (the conversation grows
  by one turn per sample);
* end_session -- a last turn with ``end_session``: the transcript is written durably to the
  outbox and the summary is queued (the summary itself runs in the background, untimed).

A second table times that background work per finished conversation of 4 and 8 turns (the
turns ``bench_app`` sends): from the closed entry's durable write until the summary, its units,
their embeddings and the index write are stored and the entry removed, as wall time and as CPU
time of the process (only the summary worker runs meanwhile). In one process it competes for
the interpreter lock with the requests being answered, so it is part of what ``bench_app``'s
memory-on throughput pays per conversation.

The pipeline writes checkpoints with the app's default ``AGENT_CHECKPOINT_INTERVAL_SECONDS``.
The baseline is the same agent (same scripted model, same prompt, same history length)
without the plugin (so also without the recall tool, whose spec the plugin's agent sends to
the model on every turn, and without the injected memory block), measured in the same run:
after ``--warmup`` untimed pairs, baseline and plugin samples alternate (ABBA), so load from
other processes on a shared machine falls on both alike. ``ratio`` = plugin p50 / baseline p50.

Run: ``python -m bench.bench_plugin [--repeat N] [--warmup N] [--memories N] [--json]``
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from strands import Agent

from agent.settings import Settings
from bench._common import emit, parser, summary_ms
from memory.pipeline.background import SummaryPipeline
from memory.embedders.local import LocalEmbedder
from memory.types import Scope
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_local import LocalOutbox
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.invocation import END_SESSION, Invocation
from memory.stores.multi_tenant import MultiTenantStore
from memory.pipeline.summarizer import Summarizer
from tests.support.scripted_model import ScriptedModel

BASE = "You are a helpful assistant.\n\n{memory_context}\n\nAnswer briefly."
TOPICS = ["budget", "deadline", "travel", "tea", "hiring", "office", "laptop", "vacation", "report", "client"]


def _seed(store: MultiTenantStore, count: int) -> None:
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        scope = Scope(f"user-{i % 20}", "acme", "orchestrator")
        store.store(scope, f"The user mentioned their {topic} plan number {i} on a call.")


Scenario = tuple[Callable[[], Any], Callable[[Any], None]]  # (untimed setup, timed run)


def paired_samples(baseline: Scenario, plugin: Scenario, repeat: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds of ``repeat`` baseline and ``repeat`` plugin runs, after ``warmup`` untimed pairs.

    The two alternate (baseline-plugin, then plugin-baseline: ABBA), so a load change on a
    shared machine (other processes, CPU frequency, a background write) hits both alike
    instead of skewing whichever was measured second.
    """
    samples: tuple[list[float], list[float]] = ([], [])
    for i in range(warmup + repeat):
        for side in ((0, 1) if i % 2 == 0 else (1, 0)):
            setup, run = (baseline, plugin)[side]
            arg = setup()
            start = time.perf_counter()
            run(arg)
            elapsed = time.perf_counter() - start
            if i >= warmup:
                samples[side].append(elapsed)
    return samples


class _Harness:
    def __init__(self, store: MultiTenantStore, pipeline: SummaryPipeline) -> None:
        self.store = store
        self.pipeline = pipeline
        self.counter = 0
        self.loop = asyncio.new_event_loop()

    def ask(self, agent: Agent, prompt: str, state: dict[str, Any]) -> Any:
        """One invocation on the harness's event loop."""
        return self.loop.run_until_complete(agent.invoke_async(prompt, invocation_state=state))

    def agent(self, with_plugin: bool) -> Agent:
        plugins = [MemoryPlugin(self.store, pipeline=self.pipeline)] if with_plugin else []
        prompt = BASE if with_plugin else BASE.replace("{memory_context}", "")
        return Agent(model=ScriptedModel(default_reply="ok"), name="orchestrator", system_prompt=prompt,
                     plugins=plugins, callback_handler=None)

    def state(self, **extra: Any) -> dict[str, Any]:
        self.counter += 1
        return {**Invocation("user-3", f"c{self.counter}", "acme").to_state(), **extra}

    def first_turn(self, with_plugin: bool) -> Scenario:
        return (lambda: (self.agent(with_plugin), self.state()),
                lambda a: self.ask(a[0], "what is my budget plan?", a[1]))

    def later_turn(self, with_plugin: bool) -> Scenario:
        agent, state = self.agent(with_plugin), self.state()
        self.ask(agent, "what is my budget plan?", state)
        return lambda: None, lambda _: self.ask(agent, "and the deadline?", state)

    def end_session(self, with_plugin: bool) -> Scenario:
        def setup() -> tuple[Agent, dict[str, Any]]:
            self.pipeline.wait()  # previous summary done, untimed
            agent, state = self.agent(with_plugin), self.state()
            self.ask(agent, "My budget plan is 2M dollars.", state)
            return agent, {**state, END_SESSION: True}

        return setup, lambda a: self.ask(a[0], "Thanks, bye.", a[1])


def background_summary(harness: _Harness, turns: int, repeat: int, warmup: int) -> dict[str, Any]:
    """Wall and CPU seconds of the background summary of ``repeat`` finished ``turns``-turn
    conversations (the pipeline's worker alone runs while the main thread waits for it)."""
    wall: list[float] = []
    cpu: list[float] = []
    units = 0
    for i in range(warmup + repeat):
        transcript: list[Any] = []
        for n in range(turns):
            prompt = f"Turn {n}: my project codename is Falcon, budget plan {i}."
            transcript += [{"role": "user", "text": prompt}, {"role": "assistant", "text": f"ECHO: {prompt}"}]
        entry = OutboxEntry(tenant_id="acme", user_id="user-3", agent_name="orchestrator",
                            conversation_id=f"bg-{turns}-{i}", transcript=transcript, opened=f"bg-{turns}-{i}")
        harness.pipeline.end_conversation(entry)
        start, start_cpu = time.perf_counter(), time.process_time()
        harness.pipeline.wait()
        if i >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        if i == 0:
            units = sum(1 for m in harness.store.list(Scope("user-3", "acme", "orchestrator"))
                        if m.conversation_id == entry.conversation_id)
    return {"turns": turns, "units_stored": units, "wall_p50_ms": summary_ms(wall)["p50_ms"],
            "cpu_p50_ms": summary_ms(cpu)["p50_ms"], "cpu_mean_ms": summary_ms(cpu)["mean_ms"]}


@contextmanager
def seeded_harness(memories: int) -> Iterator[_Harness]:
    """A harness on a fresh LocalIndex seeded with ``memories`` memories; its pipeline drained after."""
    with tempfile.TemporaryDirectory() as tmp:
        store = MultiTenantStore.for_local(root_dir=Path(tmp) / "indexes", embedder=LocalEmbedder())
        _seed(store, memories)
        pipeline = SummaryPipeline(
            store, LocalOutbox(Path(tmp) / "outbox"), Summarizer(ScriptedModel()),
            checkpoint_interval=Settings.model_fields["checkpoint_interval_seconds"].default,  # the app's
        )
        harness = _Harness(store, pipeline)
        yield harness
        harness.loop.close()
        pipeline.wait()
        pipeline.shutdown()


def main() -> None:
    p = parser("bench.bench_plugin", __doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=400, help="timed samples per side and scenario")
    p.add_argument("--warmup", type=int, default=20, help="untimed pairs first (imports, caches, JIT-free warm paths)")
    p.add_argument("--memories", type=int, default=5000)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with seeded_harness(args.memories) as harness:
        rows = []
        for name in ("first_turn", "later_turn", "end_session"):
            scenario = getattr(harness, name)
            base_samples, plug_samples = paired_samples(scenario(False), scenario(True), args.repeat, args.warmup)
            base, plug = summary_ms(base_samples), summary_ms(plug_samples)
            rows.append({
                "turn": name,
                "baseline_p50_ms": base["p50_ms"],
                "plugin_p50_ms": plug["p50_ms"],
                "baseline_p99_ms": base["p99_ms"],
                "plugin_p99_ms": plug["p99_ms"],
                "added_p50_ms": plug["p50_ms"] - base["p50_ms"],
                "ratio": plug["p50_ms"] / base["p50_ms"],
            })
        background = [background_summary(harness, turns, max(20, args.repeat // 4), 5) for turns in (4, 8)]
    emit(f"MemoryPlugin added latency (scripted model, LocalIndex+WordLlama, {args.memories} memories, "
         f"repeat={args.repeat}, warmup={args.warmup}, ABBA-paired)", rows, args.json)
    emit("background summary per finished conversation (off the response path; same index)", background, args.json)


if __name__ == "__main__":
    main()
