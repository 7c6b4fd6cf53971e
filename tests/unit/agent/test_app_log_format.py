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


def test_credentials_anywhere_in_the_line_are_redacted() -> None:
    secret, session_token = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLE+/=abcdefghijkl"
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    lines = [  # as botocore and a traceback print them
        f"Response body: b'<Credentials><AccessKeyId>ASIAABCDEFGHIJKLMNOP</AccessKeyId>"
        f"<SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session_token}</SessionToken>'",
        f"{{'SecretAccessKey': '{secret}', 'SessionToken': '{session_token}'}}",
        f"headers={{'X-Amz-Security-Token': b'{session_token}', 'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=ASIAABCDEFGHIJKLMNOP/20260101/us-east-1/sts/aws4_request'}",
        f"ValueError: bad header Bearer {jwt}",
    ]
    for text in lines:
        line = KeyValueFormatter(FORMAT).format(record(text, session_id="s-1"))
        for value in (secret, session_token, jwt, "ASIAABCDEFGHIJKLMNOP"):
            assert value not in line
        assert "<redacted-credential>" in line and line.endswith(" session_id=s-1")


def test_control_characters_from_model_or_user_values_cannot_forge_lines_or_drive_the_terminal() -> None:
    """Strands logs at ERROR the name of a tool the model asked for and did not find: the model's
    output, which a user can steer. A newline in it would start a forged log line; an ANSI escape
    would drive the operator's terminal."""
    forged = "x\n2026-11-30 03:00:00,000 INFO agent.app invocation done tenant=other\r\x1b[2J"
    tool = logging.getLogger("strands.tools").makeRecord(
        "strands.tools", logging.ERROR, __file__, 1, "tool_name=<%s> | tool not found in registry", (forged,), None
    )
    line = KeyValueFormatter(FORMAT).format(tool)
    assert line == ("ERROR strands.tools tool_name=<x\\n2026-11-30 03:00:00,000 INFO agent.app invocation done "
                    "tenant=other\\r\\x1b[2J> | tool not found in registry")
    field = KeyValueFormatter(FORMAT).format(record(error="a\rb\x1b[31mc\u2028d"))
    assert field == 'INFO agent.test session ended error="a\\rb\\x1b[31mc\\u2028d"'
