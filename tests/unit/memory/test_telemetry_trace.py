"""Spans and metrics of two real sessions: a Strands agent with the MemoryPlugin, the scripted model,
WordLlama embeddings, a LocalIndex per tenant and the summary pipeline, under the OTel SDK's
in-memory exporter and metric reader.

Session 1 states a fact and ends (summary stored in the background); session 2 gets it injected
on its first turn and calls the recall tool. Checked: span names, parentage (inside Strands'
``invoke_agent`` / ``execute_tool`` spans; the summary in its own trace linked to the turn),
attributes, metrics, and that no attribute or event of any of our spans carries a memory's text,
the transcript, the raw user id or a bearer token.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import pytest
from strands import Agent

from auth.dev_issuer import DevIssuer
from auth.errors import AuthError
from memory import telemetry
from memory.embedders.local import LocalEmbedder
from memory.pipeline.background import SummaryPipeline
from memory.pipeline.outbox_local import LocalOutbox
from memory.pipeline.summarizer import Summarizer
from memory.plugin.invocation import Invocation
from memory.plugin.plugin import MemoryPlugin
from memory.plugin.recall_tool import RECALL_TOOL_NAME
from memory.stores.multi_tenant import MultiTenantStore
from memory.types import Scope
from tests.support.otel import Captured, capture_telemetry
from tests.support.scripted_model import ScriptedModel, ToolCall

BASE = "You are a helpful assistant.\n\n{memory_context}\n\nBe brief."
USER = "alice@example.com"
FACT = "My project budget is 2 million dollars for the Falcon launch."
SUMMARY = "The user said the Falcon launch budget is 2 million dollars."


def _hash(user_id: str) -> str:
    return "h" + str(sum(map(ord, user_id)))


@contextmanager
def _two_sessions(root: Path) -> Iterator[dict[str, Any]]:
    """Two sessions of one user, captured; yields the captured telemetry and the stored memories."""
    telemetry.set_user_hasher(_hash)
    try:
        with capture_telemetry() as captured:
            store = MultiTenantStore.for_local(root_dir=root / "indexes", embedder=LocalEmbedder())
            pipeline = SummaryPipeline(store, LocalOutbox(root / "outbox"),
                                       Summarizer(ScriptedModel(summary_reply=SUMMARY), mode="abstractive"))
            model = ScriptedModel(["Noted.", ToolCall(RECALL_TOOL_NAME, {"query": "Falcon budget"}),
                                   "It is 2 million dollars.", "Bye."])

            def session() -> Agent:
                plugin = MemoryPlugin(store, pipeline=pipeline)
                return Agent(model=model, name="orchestrator", system_prompt=BASE, plugins=[plugin],
                             callback_handler=None)

            def state(conversation_id: str, end_session: bool = False) -> dict[str, Any]:
                return Invocation(USER, conversation_id, "acme", end_session=end_session).to_state()

            session()(FACT, invocation_state=state("s1", end_session=True))
            assert pipeline.wait(timeout=30)
            second = session()
            second("What is the Falcon budget?", invocation_state=state("s2"))
            # its checkpoint is written in the background: wait, or the closed entry of the next
            # turn may supersede it before the writer runs (a busy host), leaving no write to trace
            assert pipeline.flush(timeout=30)
            second("Thanks.", invocation_state=state("s2", end_session=True))
            assert pipeline.wait(timeout=30)
            pipeline.shutdown()
            stored = store.list(Scope(USER, "acme", "orchestrator"))
            yield {"captured": captured, "stored": [m.content for m in stored],
                   "units_s1": sum(1 for m in stored if m.conversation_id == "s1")}
    finally:
        telemetry.set_user_hasher(None)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with _two_sessions(tmp_path) as result:
        yield result


def _ancestors(captured: Captured, span: Any) -> list[str]:
    names = []
    while (span := captured.parent(span)) is not None:
        names.append(span.name)
    return names


def _values(span: Any) -> Iterable[str]:
    yield from (str(v) for v in span.attributes.values())
    for event in span.events:
        yield event.name
        yield from (str(v) for v in event.attributes.values())
    yield span.status.description or ""


def test_first_turn_retrieval_nests_under_the_agent_invocation(run: dict[str, Any]) -> None:
    captured: Captured = run["captured"]
    injects = captured.named("memory.inject")
    assert len(injects) == 2  # one per conversation, none on later turns
    inject = injects[1]  # session 2 finds the summary of session 1
    assert captured.parent(inject).name == "invoke_agent orchestrator"
    children = sorted(s.name for s in captured.spans() if s.parent and s.parent.span_id == inject.context.span_id)
    assert children == ["QueryVectors memory-acme", "embeddings LocalEmbedder", "memory.fusion"]
    fusion = [s for s in captured.named("memory.fusion") if captured.parent(s) == inject][0]
    assert fusion.attributes["memory.candidate.count"] == run["units_s1"]
    assert fusion.attributes["memory.top_k"] >= 1 and fusion.attributes["memory.lexical"] is True
    assert fusion.attributes["memory.redundancy"] is True and fusion.attributes["memory.specificity"] is True
    assert inject.attributes["memory.result.count"] == 1
    assert inject.attributes["memory.score.max"] > 0.2
    assert inject.attributes["memory.tenant.id"] == "acme"
    assert inject.attributes["user.hash"] == _hash(USER)
    query = captured.named("QueryVectors memory-acme")[-1]
    assert query.attributes["db.system.name"] == "sqlite"
    assert query.attributes["db.collection.name"] == "memory-acme"
    # dense over-fetch: every unit of session 1 (summary, excerpt, statement) was a candidate
    assert query.attributes["db.response.returned_rows"] == run["units_s1"] > 1
    embedding = captured.named("embeddings LocalEmbedder")[-1]
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings"
    assert embedding.attributes["gen_ai.embeddings.dimension.count"] == 256


def test_recall_tool_nests_under_strands_tool_span(run: dict[str, Any]) -> None:
    captured: Captured = run["captured"]
    recall = captured.one("memory.recall")
    assert _ancestors(captured, recall)[:1] == [f"execute_tool {RECALL_TOOL_NAME}"]
    assert "invoke_agent orchestrator" in _ancestors(captured, recall)
    assert recall.attributes["memory.result.count"] == 1
    assert recall.attributes["memory.top_k"] == 5


def test_checkpoint_and_end_write_the_outbox_inside_the_turn(run: dict[str, Any]) -> None:
    captured: Captured = run["captured"]
    checkpoint = captured.one("memory.checkpoint")  # session 2, first turn
    assert captured.parent(checkpoint).name == "invoke_agent orchestrator"
    assert checkpoint.attributes["user.hash"] == _hash(USER)  # named while spans record
    assert checkpoint.attributes["memory.tenant.id"] == "acme"
    assert checkpoint.attributes["memory.transcript.turns"] == 2
    assert [s.name for s in captured.spans() if s.parent and s.parent.span_id == checkpoint.context.span_id] == [
        "memory.outbox.write"]
    ends = captured.named("memory.conversation.end")
    assert [e.attributes["gen_ai.conversation.id"] for e in ends] == ["s1", "s2"]
    assert all(captured.parent(e).name == "invoke_agent orchestrator" for e in ends)
    writes = [s for s in captured.named("memory.outbox.write") if s.attributes["memory.outbox.entry.open"] is False]
    assert [captured.parent(w).name for w in writes] == ["memory.conversation.end"] * 2


def test_summary_runs_in_its_own_trace_linked_to_the_turn(run: dict[str, Any]) -> None:
    captured: Captured = run["captured"]
    roots = captured.named("memory.summary")
    assert len(roots) == 2
    writes = [s for s in captured.named("memory.outbox.write") if s.attributes["memory.outbox.entry.open"] is False]
    for root, write in zip(roots, writes):
        assert root.parent is None and root.context.trace_id != write.context.trace_id
        assert [link.context.span_id for link in root.links] == [write.context.span_id]
        assert root.attributes["memory.outcome"] == "done"
        assert root.attributes["memory.tenant.id"] == "acme"
    root = roots[0]
    in_trace = {s.name for s in captured.spans() if s.context.trace_id == root.context.trace_id}
    assert in_trace == {"memory.summary", "memory.summarize", "chat ScriptedModel", "memory.store_units",
                        "embeddings LocalEmbedder", "PutVectors memory-acme"}
    chat = captured.named("chat ScriptedModel")[0]
    assert captured.parent(chat).name == "memory.summarize"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert captured.named("memory.summarize")[0].attributes["memory.summary.mode"] == "abstractive"
    put = captured.named("PutVectors memory-acme")[0]
    # one put of every unit of the conversation; no delete: none of the keys its units do not use exists
    assert captured.parent(put).name == "memory.store_units"
    assert put.attributes["memory.vectors"] == run["units_s1"]
    assert captured.named("DeleteVectors memory-acme") == []


def test_metrics_of_the_two_sessions(run: dict[str, Any]) -> None:
    captured: Captured = run["captured"]
    assert captured.total("memory.retrieval.duration", **{"memory.operation": "inject"}) == 2
    assert captured.total("memory.retrieval.duration", **{"memory.operation": "recall"}) == 1
    injected = captured.points("memory.injected")
    assert [(p.count, p.sum) for p in injected] == [(2, 1)]  # session 1 found nothing, session 2 one
    assert captured.total("memory.summaries", **{"memory.outcome": "stored"}) == 2
    assert captured.total("memory.outbox.backlog") == 0  # both accepted, both stored


def test_no_span_carries_memory_text_transcripts_user_ids_or_tokens(run: dict[str, Any], tmp_path: Path) -> None:
    captured: Captured = run["captured"]
    with capture_telemetry() as auth_capture:
        issuer = DevIssuer(tmp_path / "issuer")
        verifier = issuer.verifier()
        token = issuer.mint("acme", USER)
        verifier.verify(f"Bearer {token}")
        with pytest.raises(AuthError):
            verifier.verify(token[:-4] + "AAAA")
    assert auth_capture.total("auth.token.failures", **{"auth.failure.reason": "bad_signature"}) == 1
    assert [s.attributes.get("memory.outcome") for s in auth_capture.named("auth.verify_token")] == [None, "rejected"]

    secrets = [FACT, SUMMARY, *run["stored"], USER, token, token.split(".")[1], token.split(".")[2],
               "Falcon", "budget", "2 million"]
    spans = captured.spans(ours=True) + auth_capture.spans(ours=True)
    assert {s.name for s in spans} == {  # every kind of span of a turn, a summary and a verification
        "memory.inject", "memory.recall", "embeddings LocalEmbedder", "QueryVectors memory-acme",
        "memory.fusion", "memory.checkpoint", "memory.conversation.end", "memory.outbox.write", "memory.summary",
        "memory.summarize", "chat ScriptedModel", "memory.store_units", "PutVectors memory-acme",
        "auth.verify_token"}
    for span in spans:
        for value in _values(span):
            leaked = [s for s in secrets if s.lower() in value.lower()]
            assert not leaked, f"{span.name} carries {leaked}"


def test_strands_spans_carry_memory_text_unless_the_app_redacts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why ``agent.observability`` sets Strands' redaction policy (read when its tracer is built): its own spans record the system
    prompt (with the injected memories) and tool results (the recall tool's memories)."""

    def spans_with_memory_text(root: Path) -> set[str]:
        with _two_sessions(root) as result:
            return {s.name for s in result["captured"].spans() if any(SUMMARY in v for v in _values(s))}

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    assert spans_with_memory_text(tmp_path / "default") >= {"chat", f"execute_tool {RECALL_TOOL_NAME}"}
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_unredacted_attributes=")  # redact all
    assert spans_with_memory_text(tmp_path / "redacted") == set()
