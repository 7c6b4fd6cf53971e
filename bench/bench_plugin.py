"""Added latency of MemoryPlugin per turn vs the same agent without it (scripted model, local backend).

Scenarios, each timed as one ``agent(prompt)`` call:

* first turn  -- a fresh conversation: the plugin embeds the prompt, queries the LocalIndex
  (seeded with ``--memories`` memories over 20 users), fills the system prompt and queues
  the transcript's checkpoint (written to the outbox in the background, not timed here);
* later turn  -- a turn of a running conversation: the kept memory block is re-applied and
  the transcript so far is queued as the conversation's checkpoint (the conversation grows
  by one turn per sample);
* end_session -- a last turn with ``end_session``: the transcript is written durably to the
  outbox and the summary is queued (the summary itself runs in the background, untimed).

The pipeline writes checkpoints with the app's default ``AGENT_CHECKPOINT_INTERVAL_SECONDS``.
The baseline is the same agent (same scripted model, same prompt, same history length)
without the plugin (so also without the recall tool, whose spec the plugin's agent sends to
the model on every turn, and without the injected memory block), measured in the same run:
after ``--warmup`` untimed pairs, baseline and plugin samples alternate (ABBA), so load from
other processes on a shared machine falls on both alike. ``ratio`` = plugin p50 / baseline p50.

Run: ``python -m bench.bench_plugin [--repeat N] [--warmup N] [--memories N] [--json]``
"""

from __future__ import annotations

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
                lambda a: a[0]("what is my budget plan?", invocation_state=a[1]))

    def later_turn(self, with_plugin: bool) -> Scenario:
        agent, state = self.agent(with_plugin), self.state()
        agent("what is my budget plan?", invocation_state=state)
        return lambda: None, lambda _: agent("and the deadline?", invocation_state=state)

    def end_session(self, with_plugin: bool) -> Scenario:
        def setup() -> tuple[Agent, dict[str, Any]]:
            self.pipeline.wait()  # previous summary done, untimed
            agent, state = self.agent(with_plugin), self.state()
            agent("My budget plan is 2M dollars.", invocation_state=state)
            return agent, {**state, END_SESSION: True}

        return setup, lambda a: a[0]("Thanks, bye.", invocation_state=a[1])


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
        yield _Harness(store, pipeline)
        pipeline.wait()
        pipeline.shutdown()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
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
    emit(f"MemoryPlugin added latency (scripted model, LocalIndex+WordLlama, {args.memories} memories, "
         f"repeat={args.repeat}, warmup={args.warmup}, ABBA-paired)", rows, args.json)


if __name__ == "__main__":
    main()
