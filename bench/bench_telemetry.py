"""Cost of the OpenTelemetry instrumentation per plugin turn: no-op API vs instrumentation removed.

Same harness as ``bench_plugin`` (scripted model, LocalIndex + WordLlama, ``--memories`` seeded):

* removed -- every ``memory.telemetry`` decorator unwrapped and its call-site functions replaced by
  bare stand-ins (a null context, identity functions): the code as if never instrumented;
* noop    -- as shipped with no SDK configured: the OpenTelemetry API's proxy / no-op tracer and
  meter (what the product costs when nobody collects telemetry);
* sdk     -- an SDK tracer and meter provider recording every span (batch processor, exporter
  that drops) and metric: the cost when telemetry is collected, for reference.

``removed`` and ``noop`` alternate turn by turn (``--repeat`` pairs; each later turn of a pair
extends its own conversation by one turn), so machine drift hits both alike; ``sdk`` runs after
them (once a provider is set, Strands' tracers stay bound to it). ``ratio`` is a mode's p50 over
``removed``'s p50. Turn latencies are dominated by fsyncs and vary by several ms on a shared
machine, so a second table times the instrumentation itself: one span (enter + attributes +
exit) and one retrieval record, per call, in each mode; ``our_spans`` counts the spans a turn opens.

Run: ``python -m bench.bench_telemetry [--repeat N] [--memories N] [--calls N] [--json]``
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Sequence

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench._common import emit, parser, summary_ms, time_calls
from bench.bench_plugin import _Harness, seeded_harness
from memory import telemetry
from memory.embedders.local import LocalEmbedder
from memory.index.local import LocalIndex
from memory.pipeline.summarizer import Summarizer
from memory.stores.single_tenant import SingleTenantStore
from memory.types import Scope
from telemetry import spans as neutral_spans
from tests.support.otel import capture_telemetry, reset_globals

#: Classes whose methods carry ``memory.telemetry`` decorators on the plugin's path.
DECORATED = (LocalEmbedder, LocalIndex, SingleTenantStore, Summarizer)
#: Where those decorators' wrappers are defined (``traced`` is the neutral package's).
DECORATOR_FILES = (telemetry.__file__, neutral_spans.__file__)
MODES = ("removed", "noop", "sdk")


class _NullContext:
    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None


class _DropSpans(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _stand_ins() -> dict[str, Callable[..., Any]]:
    null = _NullContext(trace.INVALID_SPAN)
    found = _NullContext(lambda memories: memories)
    return {
        "span": lambda *a, **k: null,
        "retrieval": lambda *a, **k: found,
        "in_background": lambda name, work: work,
        "annotate": lambda *a, **k: None,
        "identity_attributes": lambda *a, **k: {},
        "summary_counted": lambda name: None,
        "outbox_backlog": lambda delta: None,
        "current_span": lambda: trace.INVALID_SPAN,
    }


@contextmanager
def _mode(name: str) -> Iterator[None]:
    """Run the block with telemetry removed, as shipped (no SDK), or recorded by an SDK."""
    if name == "removed":
        saved_functions = {attr: getattr(telemetry, attr) for attr in _stand_ins()}
        saved_methods = []
        for cls in DECORATED:
            for attr, value in list(vars(cls).items()):
                wrapped = getattr(value, "__wrapped__", None)
                code = getattr(value, "__code__", None)
                if wrapped is not None and code is not None and code.co_filename in DECORATOR_FILES:
                    saved_methods.append((cls, attr, value))
                    setattr(cls, attr, wrapped)
        for attr, stand_in in _stand_ins().items():
            setattr(telemetry, attr, stand_in)
        try:
            yield
        finally:
            for attr, value in saved_functions.items():
                setattr(telemetry, attr, value)
            for cls, attr, value in saved_methods:
                setattr(cls, attr, value)
    elif name == "sdk":
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(_DropSpans()))
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        reset_globals()
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        try:
            yield
        finally:
            reset_globals()
            tracer_provider.shutdown()
            meter_provider.shutdown()
    else:
        reset_globals()
        yield


def _per_call(calls: int) -> list[dict[str, Any]]:
    scope = Scope("user-3", "acme", "orchestrator")
    attributes = telemetry.identity_attributes("acme", "user-3", "orchestrator", "c1")

    def one_span() -> None:
        with telemetry.span("memory.checkpoint", attributes):
            pass

    def one_retrieval() -> None:
        with telemetry.retrieval("inject", scope) as found:
            found([])

    rows = []
    for mode in MODES:
        with _mode(mode):
            for name, fn in (("span", one_span), ("retrieval", one_retrieval)):
                samples = time_calls(lambda: [fn() for _ in range(calls)], repeat=5, warmup=1)
                rows.append({"call": name, "telemetry": mode, "us_per_call": min(samples) / calls * 1e6})
    return rows


def _spans_per_turn(harness: _Harness) -> dict[str, int]:
    """How many of our spans one first turn and one later turn open (recorded by an SDK)."""
    counts = {}
    with capture_telemetry() as captured:
        agent, state = harness.agent(True), harness.state()
        agent("what is my budget plan?", invocation_state=state)
        counts["first_turn"] = len(captured.spans(ours=True))
        captured.exporter.clear()
        agent("and the deadline?", invocation_state=state)
        counts["later_turn"] = len(captured.spans(ours=True))
    return counts


PROMPTS = {"first_turn": "what is my budget plan?", "later_turn": "and the deadline?"}


def _turn_samples(harness: _Harness, turn: str, modes: Sequence[str], repeat: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per ``turn`` in each mode, modes interleaved sample by sample (one mode: the
    caller has entered it)."""
    switch = _mode if len(modes) > 1 else (lambda mode: nullcontext())
    agents: dict[str, Any] = {}
    if turn == "later_turn":  # one running conversation per mode, built (and begun) in its mode
        for mode in modes:
            with switch(mode):
                agents[mode] = (harness.agent(True), harness.state())
                agents[mode][0](PROMPTS["first_turn"], invocation_state=agents[mode][1])
    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(warmup + repeat):
        for mode in modes:
            with switch(mode):
                agent, state = agents[mode] if turn == "later_turn" else (harness.agent(True), harness.state())
                start = time.perf_counter()
                agent(PROMPTS[turn], invocation_state=state)
                if i >= warmup:
                    samples[mode].append(time.perf_counter() - start)
    return samples


def main() -> None:
    p = parser("bench.bench_telemetry", __doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=300, help="samples per mode and turn")
    p.add_argument("--memories", type=int, default=5000)
    p.add_argument("--calls", type=int, default=20000)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with seeded_harness(args.memories) as harness:
        samples: dict[tuple[str, str], list[float]] = {}
        for turn in ("first_turn", "later_turn"):
            for mode, found in _turn_samples(harness, turn, ("removed", "noop"), args.repeat).items():
                samples[(turn, mode)] = found
        with _mode("sdk"):
            for turn in ("first_turn", "later_turn"):
                samples[(turn, "sdk")] = _turn_samples(harness, turn, ("sdk",), args.repeat)["sdk"]
        spans = _spans_per_turn(harness)

    rows = []
    for turn in ("first_turn", "later_turn"):
        base = summary_ms(samples[(turn, "removed")])
        for mode in MODES:
            stats = summary_ms(samples[(turn, mode)])
            rows.append({
                "turn": turn,
                "telemetry": mode,
                "p50_ms": stats["p50_ms"],
                "p99_ms": stats["p99_ms"],
                "mean_ms": stats["mean_ms"],
                "ratio_p50": stats["p50_ms"] / base["p50_ms"],
                "our_spans": spans[turn],
            })
    emit(f"MemoryPlugin turn latency by telemetry mode (scripted model, LocalIndex+WordLlama, "
         f"{args.memories} memories, {args.repeat} samples per mode)", rows, args.json)
    emit("Instrumentation cost per call (best of 5 runs of --calls calls)", _per_call(args.calls), args.json)


if __name__ == "__main__":
    main()
