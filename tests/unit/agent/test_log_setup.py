"""Logging set-up (own packages follow AGENT_LOG_LEVEL, third-party loggers stay at WARNING) and
what ``python -m agent`` sets up before serving."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

import agent.app
from agent.log_setup import OWN_PACKAGES, SDK_LOGGER, configure_logging

THIRD_PARTY = ("botocore", "botocore.endpoint", "boto3", "urllib3", "s3transfer", "strands", "httpx", "openai")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    names = (*OWN_PACKAGES, SDK_LOGGER)
    handlers, level, levels = list(root.handlers), root.level, {n: logging.getLogger(n).level for n in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


def test_debug_reaches_own_packages_only() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    for name in OWN_PACKAGES:
        assert logging.getLogger(f"{name}.sub").isEnabledFor(logging.DEBUG)
    for name in THIRD_PARTY:
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
    logging.getLogger("botocore.parsers").debug("Response body: secret")
    logging.getLogger("memory.store").debug("stored memory k (3 chars)")
    assert stream.getvalue().count("\n") == 1 and "stored memory" in stream.getvalue()


def test_unsafe_setting_lets_third_party_debug_through_with_credentials_redacted() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", unsafe_third_party=True, stream=stream)
    logging.getLogger("botocore.parsers").debug("<SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</")
    assert "DEBUG botocore.parsers <SecretAccessKey><redacted-credential></" in stream.getvalue()


def test_warning_level_applies_to_everyone() -> None:
    configure_logging("WARNING")
    assert not logging.getLogger("memory.store").isEnabledFor(logging.INFO)
    assert logging.getLogger(SDK_LOGGER).level == logging.WARNING


def test_main_configures_logging_from_settings_and_a_private_umask(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    class FakeApp:
        add_async_task = complete_async_task = None

    def serve(app: Any, settings: Any, services: Any) -> None:
        seen["botocore"] = logging.getLogger("botocore").getEffectiveLevel()
        seen["agent"] = logging.getLogger("agent.app").getEffectiveLevel()
        seen["umask"] = os.umask(0o022)

    monkeypatch.setattr(agent.app, "create_app", lambda settings, **factory: FakeApp())
    monkeypatch.setattr(agent.app, "_serve", serve)
    monkeypatch.setattr(agent.app, "build_services", lambda settings, **hooks: None)
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    monkeypatch.setenv("AGENT_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("AGENT_LOG_LEVEL", "DEBUG")
    previous = os.umask(0o022)
    try:
        assert agent.app.main() == 0
    finally:
        os.umask(previous)
    assert seen == {"botocore": logging.WARNING, "agent": logging.DEBUG, "umask": 0o077}


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_the_opentelemetry_log_handler_of_the_distro_is_kept_and_sees_only_redacted_records() -> None:
    """``opentelemetry-instrument`` with the AWS distro (``AGENT_OBSERVABILITY_ENABLED=true`` sets
    ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``) adds the SDK's ``LoggingHandler`` to
    the root logger before the app starts: the OTLP path of the logs to CloudWatch. It exports
    the message, every extra field and the exception as OTLP body and attributes, without our
    formatter."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logging.getLogger().addHandler(LoggingHandler(level=logging.NOTSET, logger_provider=provider))
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)

    logger = logging.getLogger("agent.app")
    logger.info("token %s rejected", JWT, extra={"session_id": "s-1", "prompt": "my budget is 2M"})
    try:
        raise ValueError(f"bad header Bearer {JWT}")
    except ValueError:
        logger.exception("invocation failed")

    exported = [(str(log.log_record.body), dict(log.log_record.attributes or {}))
                for log in exporter.get_finished_logs()]
    assert [body.splitlines()[0] for body, _ in exported] == [
        "token <redacted-credential> rejected", "invocation failed"]
    assert exported[0][1]["session_id"] == "s-1" and exported[0][1]["prompt"] == "<redacted>"
    assert "ValueError: bad header Bearer <redacted-credential>" in exported[1][0]  # the traceback
    assert JWT not in repr(exported) and "2M" not in repr(exported)
    assert "token <redacted-credential> rejected" in stream.getvalue() and JWT not in stream.getvalue()


def test_a_tool_input_strands_logs_at_warning_is_redacted() -> None:
    """Strands warns with up to 200 characters of a tool call's raw input when it is not valid
    JSON (e.g. a call cut off at max_tokens): the recall tool's query, written by the model from
    the conversation and its memories. Strands' messages name their values ``key=<%s>``."""
    from strands.event_loop.streaming import handle_content_block_stop

    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    state = {"content": [], "text": "", "reasoningText": "", "citationsContent": [],
             "current_tool_use": {"toolUseId": "t1", "name": "memory_tool",
                                  "input": '{"query": "the Falcon launch budget of alice'}}
    handle_content_block_stop(state)

    line = stream.getvalue()
    assert "WARNING strands.event_loop.streaming tool_name=<memory_tool>, raw_input=<<redacted>>" in line
    assert "Falcon" not in line and "alice" not in line
