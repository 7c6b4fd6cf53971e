"""OpenTelemetry spans and metrics of memory operations, through the OpenTelemetry API only.

Built on the project's neutral ``telemetry`` package; the primitives the library's modules use
(:func:`span`, :func:`traced`, :func:`annotate`, :func:`current_span`, ``TENANT``) are
re-exported here, so those modules import one telemetry module. Nothing here configures an SDK
or an exporter: without one (the default) every call is the API's no-op; under
``opentelemetry-instrument`` (the AgentCore container runs the app under the AWS distro) or any
SDK set up by the application, the spans and metrics below are exported. The tracer, meter and
instruments follow the global providers (re-read when they change).

Spans (instrumentation scope ``agent_memory``). Inside a turn they nest under Strands'
``invoke_agent`` span (or ``execute_tool memory_tool`` for the recall tool); background work
(``memory.summary``) starts its own trace, linked to the span that scheduled it.

=============================  ===================================================================
``memory.inject``              first-turn retrieval (``gen_ai.operation.name=retrieval``)
``memory.recall``              the recall tool's retrieval
``embeddings <model>``         one embedder call (GenAI ``embeddings``)
``<Operation> <index>``        a vector index call, e.g. ``QueryVectors memory-acme`` (db spans)
``memory.store``               storing one memory (embedding + ``PutVectors``)
``memory.checkpoint``          a per-turn checkpoint of a live conversation
``memory.conversation.end``    a conversation handed to the summary pipeline
``memory.outbox.write``        one durable outbox write (``memory.outbox.entry.open``)
``memory.outbox.replay``       start-up replay of what a previous process left
``memory.summary``             root of one background summary task (linked to its cause)
``memory.summarize``           turning a transcript into the summary text
``chat <model>``               the summarization model call (GenAI ``chat``)
``memory.tvm.credentials``     tenant credentials (``memory.tvm.source``: ``cache`` or ``sts``)
``memory.tvm.assume_role``     the STS AssumeRole call behind a cache miss
=============================  ===================================================================

Attributes carry identifiers, counts, scores, outcomes and ``error.type`` only: never memory text,
prompts, transcripts, tokens, credentials or raw user ids (the user appears as ``user.hash`` when
the application installs a keyed hash with :func:`set_user_hasher`). A failure sets the span's
status to ERROR with the exception's type name, never its message.

Metrics: ``memory.retrieval.duration`` (s), ``memory.injected`` (memories per first turn),
``memory.summaries`` (by ``memory.outcome``: stored, failed, exhausted, dead_lettered, empty),
``memory.outbox.backlog`` (gauge: entries accepted and not yet stored by this process),
``memory.tvm.credential_requests`` (by ``memory.tvm.source``). Bearer-token verification has its
own span and metric in ``auth.metrics``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind

from telemetry import (
    ERROR_TYPE,
    OUTCOME,
    TENANT,
    Instruments,
    annotate,
    background_span,
    current_span,
    record_error,
    span,
    traced,
    tracer,
)

if TYPE_CHECKING:
    from memory.types import Memory, Scope

__all__ = [
    "AGENT",
    "CONVERSATION",
    "NO_CAUSE",
    "OPERATION",
    "SUMMARY_OUTCOMES",
    "TENANT",
    "USER",
    "annotate",
    "cause",
    "current_span",
    "embedding",
    "embedding_attributes",
    "identity_attributes",
    "in_background",
    "model_attributes",
    "outbox_backlog",
    "record_error",
    "recording",
    "result_attributes",
    "retrieval",
    "scope_attributes",
    "set_user_hasher",
    "span",
    "summary_counted",
    "traced",
    "tvm_credentials",
    "user_hash",
    "vector_operation",
    "within",
]

AGENT = "gen_ai.agent.name"
USER = "user.hash"
CONVERSATION = "gen_ai.conversation.id"
OPERATION = "gen_ai.operation.name"

#: Names the summary pipeline counts (``SummaryPipeline.metrics``) mapped to ``memory.summaries`` outcomes.
SUMMARY_OUTCOMES = {
    "stored": "stored",
    "failed_attempts": "failed",
    "exhausted": "exhausted",
    "dead_lettered": "dead_lettered",
    "skipped_empty": "empty",
}

F = TypeVar("F", bound=Callable[..., Any])

_user_hasher: Callable[[str], str] | None = None


def set_user_hasher(hasher: Callable[[str], str] | None) -> None:
    """Install the keyed hash that names users in spans (``user.hash``); spans never carry user ids.

    Use the pseudonym of your logs (the app passes its HMAC ``agent.user_hash.UserHasher``), so a
    trace and a log line of one user can be matched by whoever holds the key.

    Args:
        hasher: Maps a user id to its pseudonym; None (the default) leaves users out of spans.

    Returns:
        None.
    """
    global _user_hasher
    _user_hasher = hasher


# -- instruments ----------------------------------------------------------------------------


class _Level:
    """A count observed as a gauge: exporters with DELTA temporality (the AWS distro's ``awsemf``)
    would export an up-down counter's change per period, not the count itself."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, delta: int) -> None:
        with self._lock:
            self._value += delta

    def observe(self, options: metrics.CallbackOptions) -> list[metrics.Observation]:
        return [metrics.Observation(self._value)]


@dataclass(frozen=True)
class _Instruments:
    retrieval_duration: metrics.Histogram
    injected: metrics.Histogram
    summaries: metrics.Counter
    outbox_backlog: _Level
    tvm_requests: metrics.Counter


def _create_instruments(meter: metrics.Meter) -> _Instruments:
    backlog = _Level()
    meter.create_observable_gauge(
        "memory.outbox.backlog",
        callbacks=[backlog.observe],
        unit="{entry}",
        description="Outbox entries accepted and not yet stored",
    )
    return _Instruments(
        retrieval_duration=meter.create_histogram(
            "memory.retrieval.duration",
            unit="s",
            description="Memory retrieval latency (embedding, query, ranking)",
            explicit_bucket_boundaries_advisory=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        injected=meter.create_histogram(
            "memory.injected",
            unit="{memory}",
            description="Memories injected into the system prompt on the first turn of a conversation",
            explicit_bucket_boundaries_advisory=(0, 1, 2, 3, 5, 10, 20),
        ),
        summaries=meter.create_counter(
            "memory.summaries", unit="{summary}", description="Conversation summaries by outcome"
        ),
        outbox_backlog=backlog,
        tvm_requests=meter.create_counter(
            "memory.tvm.credential_requests",
            unit="{request}",
            description="Tenant credential requests, served from the cache or by an STS call",
        ),
    )


_instruments = Instruments(_create_instruments)


# -- spans ----------------------------------------------------------------------------------


def in_background(name: str, work: Callable[[str], bool | str]) -> Callable[[str], bool]:
    """``work(entry_id)`` wrapped to run (in a worker thread) under a :func:`background_span`.

    The cause is the span current when this is called (e.g. ``memory.conversation.end``); the
    root span records ``memory.outbox.entry.id`` and ``memory.outcome``: the string ``work``
    returns (e.g. ``dead_lettered``), else ``done`` when it returns True, ``kept`` when the entry
    stays in the outbox. The wrapped function returns whether the outcome is not ``kept``.
    """
    captured = otel_context.get_current()

    def run(entry_id: str) -> bool:
        with within(captured):
            with background_span(name, {"memory.outbox.entry.id": entry_id}) as current:
                result = work(entry_id)
                outcome = result if isinstance(result, str) else "done" if result else "kept"
                annotate(current, {OUTCOME: outcome})
                return outcome != "kept"

    return run


def recording() -> bool:
    """Whether spans record (a tracer provider is set): attributes that cost something to name
    (a user's keyed pseudonym) are worth computing only then."""
    return tracer() is not None


#: The empty context: work run :func:`within` it has no cause (a new trace without link).
NO_CAUSE = otel_context.Context()


def cause() -> otel_context.Context:
    """The OpenTelemetry context current here: hand it to :func:`within` to run later work in it."""
    return otel_context.get_current()


@contextmanager
def within(context: otel_context.Context) -> Iterator[None]:
    """Run the block in ``context`` (from :func:`cause`).

    For work done later on a long-lived thread: with the threading instrumentation (Strands and
    ``opentelemetry-instrument`` turn it on) such a thread runs in the context of whichever
    request happened to start it.
    """
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


# -- attributes -----------------------------------------------------------------------------


def user_hash(user_id: str | None) -> str | None:
    """``user_id`` through the installed keyed hash, or None (no hasher, no user)."""
    return _user_hasher(user_id) if _user_hasher is not None and user_id else None


def identity_attributes(
    tenant_id: str | None, user_id: str | None, agent_name: str | None, conversation_id: str | None = None
) -> dict[str, Any]:
    """Whose operation it is: tenant, agent, ``user.hash`` (never the user id) and conversation."""
    return {TENANT: tenant_id, AGENT: agent_name, USER: user_hash(user_id), CONVERSATION: conversation_id}


def scope_attributes(scope: "Scope") -> dict[str, Any]:
    """:func:`identity_attributes` of a memory Scope."""
    return identity_attributes(scope.tenant_id, scope.user_id, scope.agent_name)


def result_attributes(memories: Sequence["Memory"]) -> dict[str, Any]:
    """How many memories were found and a summary of their scores."""
    scores = [m.score for m in memories if m.score is not None]
    return {
        "memory.result.count": len(memories),
        "memory.score.max": round(max(scores), 4) if scores else None,
        "memory.score.min": round(min(scores), 4) if scores else None,
    }


# -- operations -----------------------------------------------------------------------------


@contextmanager
def retrieval(operation: str, scope: "Scope", **attributes: Any) -> Iterator[Callable[[Sequence[Memory]], Any]]:
    """Span ``memory.<operation>`` plus the retrieval metrics around one retrieval.

    The block calls the yielded function with the memories found (it returns them unchanged)::

        with telemetry.retrieval("inject", scope, **{"memory.top_k": 5}) as found:
            memories = found(store.retrieve(scope, prompt, top_k=5))

    ``memory.retrieval.duration`` is recorded either way (``error.type`` on failure) and, for
    ``inject``, the number of memories injected (``memory.injected``).
    """
    started = time.perf_counter()
    labels: dict[str, Any] = {"memory.operation": operation}
    if scope.agent_name:
        labels[AGENT] = scope.agent_name
    instruments = _instruments.get()
    with span(f"memory.{operation}") as current:
        if current.is_recording():
            annotate(current, {OPERATION: "retrieval", **labels, **scope_attributes(scope), **attributes})

        def found(memories: Sequence["Memory"]) -> Any:
            annotate(current, result_attributes(memories))
            if operation == "inject":
                instruments.injected.record(len(memories), {k: v for k, v in labels.items() if k == AGENT})
            return memories

        try:
            yield found
        except Exception as exc:
            labels[ERROR_TYPE] = type(exc).__qualname__
            raise
        finally:
            instruments.retrieval_duration.record(time.perf_counter() - started, labels)


def embedding_attributes(embedder: Any, texts: Sequence[str], purpose: str) -> dict[str, Any]:
    """GenAI ``embeddings`` attributes of one embedder call (counts, never the texts)."""
    return {
        OPERATION: "embeddings",
        "gen_ai.request.model": getattr(embedder, "model_id", None) or type(embedder).__name__,
        "gen_ai.embeddings.dimension.count": getattr(embedder, "dimension", None),
        "memory.embedding.purpose": purpose,
        "memory.embedding.inputs": len(texts),
    }


def embedding(method: F) -> F:
    """Decorator of ``Embedder.embed`` methods: span ``embeddings <model>``."""

    @functools.wraps(method)
    def wrapper(self: Any, texts: Sequence[str], purpose: str) -> Any:
        model = getattr(self, "model_id", None) or type(self).__name__
        with span(f"embeddings {model}", kind=SpanKind.CLIENT) as current:
            if current.is_recording():
                annotate(current, embedding_attributes(self, texts, purpose))
            return method(self, texts, purpose)

    return wrapper  # type: ignore[return-value]


def vector_operation(operation: str, system: str, *, batch: bool = False) -> Callable[[F], F]:
    """Decorator of ``VectorIndex`` methods: a database span ``<operation> <index name>``.

    Attributes follow the database conventions (``db.system.name`` = ``system``,
    ``db.collection.name`` = the index, ``db.namespace`` = its bucket if any); with ``batch``
    the first argument's length (records, keys) is ``memory.vectors`` (not
    ``db.operation.batch.size``: one call with several vectors is one operation, not a batch of
    operations); a list result gives ``db.response.returned_rows``.
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with span(f"{operation} {self.name}") as current:
                recording = current.is_recording()
                if recording:
                    size = len(args[0]) if batch and args and isinstance(args[0], Sequence) else None
                    annotate(current, {
                        "db.system.name": system,
                        "db.operation.name": operation,
                        "db.collection.name": self.name,
                        "db.namespace": getattr(self, "bucket", None),
                        "memory.vectors": size,
                    })
                result = method(self, *args, **kwargs)
                if recording and isinstance(result, list):
                    current.set_attribute("db.response.returned_rows", len(result))
                return result

        return wrapper  # type: ignore[return-value]

    return decorate


def model_attributes(model: Any) -> dict[str, Any]:
    """GenAI ``chat`` attributes of a Strands model (its configured model id, if any)."""
    config = model.get_config() if hasattr(model, "get_config") else {}
    model_id = config.get("model_id") if isinstance(config, Mapping) else None
    return {OPERATION: "chat", "gen_ai.request.model": model_id or type(model).__name__}


def summary_counted(name: str) -> None:
    """Count a summary outcome in ``memory.summaries`` if ``name`` is one (``SUMMARY_OUTCOMES``)."""
    outcome = SUMMARY_OUTCOMES.get(name)
    if outcome is not None:
        _instruments.get().summaries.add(1, {OUTCOME: outcome})


def outbox_backlog(delta: int) -> None:
    """Entries accepted (+1) or stored / given up by this process (-1)."""
    _instruments.get().outbox_backlog.add(delta)


def tvm_credentials(source: str, tenant_id: str) -> None:
    """Count a credential request served from ``source`` (``cache`` or ``sts``) on the current span."""
    _instruments.get().tvm_requests.add(1, {"memory.tvm.source": source})
    annotate(trace.get_current_span(), {"memory.tvm.source": source, TENANT: tenant_id})
