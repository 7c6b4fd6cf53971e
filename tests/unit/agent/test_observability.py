"""agent.observability: Strands' content redaction policy and the console exporter."""

from __future__ import annotations

import io
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry import metrics, trace

from agent.observability import (
    CAPTURE_MESSAGE_CONTENT,
    REDACT_ALL,
    SEMCONV_OPT_IN,
    enable_console_export,
    flush,
    redact_content,
)
from memory import telemetry
from tests.support.otel import capture_telemetry, reset_globals


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, REDACT_ALL),
        ("gen_ai_latest_experimental", f"gen_ai_latest_experimental,{REDACT_ALL}"),
        ("gen_ai_unredacted_attributes=gen_ai.output.*", "gen_ai_unredacted_attributes=gen_ai.output.*"),
    ],
)
def test_genai_content_redacted_unless_a_strands_policy_is_set(
    monkeypatch: pytest.MonkeyPatch, before: str | None, after: str
) -> None:
    monkeypatch.setenv(SEMCONV_OPT_IN, before or "")  # recorded, so the variables are restored after
    monkeypatch.setenv(CAPTURE_MESSAGE_CONTENT, "true")  # the AWS distro's default
    if before is None:
        monkeypatch.delenv(SEMCONV_OPT_IN)
    redact_content()
    assert os.environ[SEMCONV_OPT_IN] == after
    assert os.environ[CAPTURE_MESSAGE_CONTENT] == "false"


@pytest.fixture
def no_providers() -> Iterator[None]:
    reset_globals()
    yield
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        getattr(provider, "shutdown", lambda: None)()
    reset_globals()


def test_console_prints_one_line_per_span_and_metric_point(no_providers: None) -> None:
    out = io.StringIO()
    enable_console_export(out)
    with telemetry.span("memory.conversation.end", {"memory.tenant.id": "acme"}):
        with telemetry.span("memory.outbox.write"):
            pass
    telemetry.summary_counted("stored")
    assert not any(line.startswith("metric ") for line in out.getvalue().splitlines())  # every 60 s by default
    flush()  # what the app's shutdown does (atexit never runs: uvicorn re-raises SIGTERM)

    lines = out.getvalue().splitlines()
    spans = [line for line in lines if line.startswith("span ")]
    assert [line.split("'")[1] for line in spans] == ["memory.outbox.write", "memory.conversation.end"]
    parent_id = spans[1].split(" id=")[1].split()[0]
    assert f"parent={parent_id}" in spans[0] and "memory.tenant.id=acme" in spans[1]
    assert "metric memory.summaries{memory.outcome=stored} value=1" in lines


def test_console_joins_an_sdk_provider_already_installed() -> None:
    out = io.StringIO()
    with capture_telemetry() as captured:
        enable_console_export(out)
        with telemetry.span("memory.checkpoint"):
            pass
    assert [s.name for s in captured.spans()] == ["memory.checkpoint"]
    assert out.getvalue().startswith("span 'memory.checkpoint'")


def test_flush_without_an_sdk_does_nothing(no_providers: None) -> None:
    flush()


def test_strands_metrics_carry_no_per_cycle_or_per_call_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """Strands 1.62 tags its event-loop metrics with ``event_loop_cycle_id`` (a new UUID per
    cycle) and its tool metrics with ``tool_use_id``, and with the name of any tool the model
    asks for, registered or not (a name a prompt can dictate). The AWS distro's ``awsemf``
    exporter makes every attribute a CloudWatch dimension: one new custom metric per cycle, per
    tool call, per invented tool name."""
    from strands import Agent, tool
    from strands.telemetry.metrics import MetricsClient

    from agent.observability import configure
    from tests.support.scripted_model import ScriptedModel, ToolCall

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        return "found"

    monkeypatch.setattr(MetricsClient, "_instance", None)  # bound to the captured provider below
    with capture_telemetry() as captured:
        configure(console=False, capture_content=True, tool_names={"lookup"})
        model = ScriptedModel([ToolCall("lookup", {"query": "q"}), "done", ToolCall("no_such_tool_7", {}), "ok"])
        agent = Agent(model=model, tools=[lookup], callback_handler=None)
        agent("first")
        agent("second")
        cycles = captured.points("strands.event_loop.cycle_count")
        calls = captured.points("strands.tool.call_count")

    assert sum(p.value for p in cycles) == 4 and sum(p.value for p in calls) == 2  # two cycles and one call a turn
    assert [dict(p.attributes) for p in cycles] == [{}]
    assert [dict(p.attributes) for p in calls] == [{"tool_name": "lookup"}, {"tool_name": "_OTHER"}]


def test_console_lines_escape_control_characters_of_attribute_values(no_providers: None) -> None:
    """Strands' spans carry values the model wrote (e.g. the name of a tool it asked for): an
    ANSI escape or a newline in one must not reach the developer's terminal as such."""
    out = io.StringIO()
    enable_console_export(out)
    with telemetry.span("memory.checkpoint") as current:
        current.set_attribute("gen_ai.tool.name", "x\x1b[2J\ry\nz")
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x1b" not in line and "\r" not in line
    assert "gen_ai.tool.name=x\\x1b[2J\\ry\\nz" in line


def test_flush_exports_the_log_records_the_sdk_still_holds() -> None:
    """Under the distro the logs' OTLP copy goes through a batching processor of the global
    logger provider, flushed at exit, and ``atexit`` never runs (uvicorn re-raises SIGTERM):
    the shutdown's own lines would be lost."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    exporter = InMemoryLogRecordExporter()
    with _batching_logger_provider(exporter) as provider:
        provider.get_logger("agent.app").emit(body="shutting down: ending open conversations")
        flush()
        assert [str(log.log_record.body) for log in exporter.get_finished_logs()] == [
            "shutting down: ending open conversations"]


@contextmanager
def _batching_logger_provider(exporter: Any) -> Iterator[Any]:
    """A global SDK logger provider batching to ``exporter`` (as the distro's), reset afterwards."""
    from opentelemetry import _logs
    from opentelemetry._logs import _internal as logs_internal
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.util._once import Once

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, schedule_delay_millis=600_000))
    logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    logs_internal._LOGGER_PROVIDER = None  # type: ignore[attr-defined]
    _logs.set_logger_provider(provider)
    try:
        yield provider
    finally:
        logs_internal._LOGGER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
        logs_internal._LOGGER_PROVIDER = None  # type: ignore[attr-defined]
        provider.shutdown()


def test_the_app_bounds_strands_tool_metrics_to_the_tools_its_agents_have(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import agent.app
    from agent.orchestrator import build_conversation
    from tests.support.scripted_model import ScriptedModel

    seen: dict[str, object] = {}

    class FakeApp:
        add_async_task = complete_async_task = None

    monkeypatch.setattr(agent.app, "create_app", lambda settings, **factory: FakeApp())
    monkeypatch.setattr(agent.app, "_serve", lambda app, settings, services: None)
    monkeypatch.setattr(agent.app, "build_services", lambda settings, **hooks: None)
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(agent.app, "configure_telemetry", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setattr(agent.app, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(agent.app.os, "umask", lambda mask: 0)
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    assert agent.app.main() == 0

    from memory.plugin.plugin import MemoryPlugin
    from tests.unit.memory.conftest import FakeStore

    conversation = build_conversation(ScriptedModel(), lambda name, **_: MemoryPlugin(FakeStore(), pipeline=None))
    registered = set(conversation.agent.tool_registry.registry)  # the specialists and the recall tool
    assert registered == {"research_specialist", "memory_tool"} and seen["tool_names"] == registered


def test_flush_returns_at_its_timeout_while_an_export_hangs() -> None:
    """The shutdown gives the telemetry flush what is left of its budget, but the SDK's batching
    processors (opentelemetry-sdk 1.45, ``_shared_internal.BatchProcessor.force_flush``) ignore
    ``timeout_millis`` and export everything in the calling thread: an exporter stalled on the
    network (the OTLP exporter's own timeout is 10 s a batch) held the process past AgentCore's
    15 s. The export goes on in the background; the flush returns at its timeout."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    released = threading.Event()

    class StalledExporter(InMemoryLogRecordExporter):
        def export(self, batch: Any) -> Any:
            released.wait()
            return super().export(batch)

    exporter = StalledExporter()
    flushing = threading.Thread(target=flush, args=(50,), daemon=True)
    with _batching_logger_provider(exporter) as provider:
        try:
            provider.get_logger("agent.app").emit(body="shutting down: ending open conversations")
            flushing.start()
            flushing.join(timeout=20)  # a bound far above the flush's own (no timing is measured)
            assert not flushing.is_alive(), "the flush waited for the stalled export"
        finally:
            released.set()
            flushing.join(timeout=20)
    assert [str(log.log_record.body) for log in exporter.get_finished_logs()] == [
        "shutting down: ending open conversations"]  # exported once the exporter answered
