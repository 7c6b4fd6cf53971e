"""Structured logs: the ``extra=`` fields reach the log line; secret-looking fields are redacted."""

from __future__ import annotations

import logging
import sys

from agent.log_format import KeyValueFormatter

FORMAT = "%(levelname)s %(name)s %(message)s"


def record(msg: str = "session ended", exc_info=None, **extra: object) -> logging.LogRecord:
    return logging.getLogger("agent.test").makeRecord(
        "agent.test", logging.INFO, __file__, 1, msg, (), exc_info, extra=extra
    )


def test_extra_fields_are_appended_sorted() -> None:
    line = KeyValueFormatter(FORMAT).format(
        record(session_id="s-1", tenant="tenant-a", latency_ms=12.5, operation="invoke", ended=True)
    )
    assert line == "INFO agent.test session ended ended=True latency_ms=12.5 operation=invoke session_id=s-1 tenant=tenant-a"


def test_a_record_without_extras_is_unchanged() -> None:
    assert KeyValueFormatter(FORMAT).format(record("plain")) == "INFO agent.test plain"


def test_values_with_spaces_or_quotes_are_quoted() -> None:
    line = KeyValueFormatter(FORMAT).format(record(path='a b"c', empty=""))
    assert line.endswith(' empty="" path="a b\\"c"')


def test_secret_or_memory_text_fields_are_redacted() -> None:
    line = KeyValueFormatter(FORMAT).format(
        record(token="eyJabc", authorization="Bearer eyJabc", content="my PIN is 1234", prompt="hi", session_id="s")
    )
    assert "eyJabc" not in line and "1234" not in line and " prompt=<redacted>" in line
    assert line.count("<redacted>") == 4 and " session_id=s " in line


def test_fields_stay_on_the_first_line_above_a_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        line = KeyValueFormatter(FORMAT).format(record("failed", exc_info=sys.exc_info(), session_id="s-9"))
    first, rest = line.split("\n", 1)
    assert first == "INFO agent.test failed session_id=s-9"
    assert rest.startswith("Traceback") and "RuntimeError: boom" in rest
