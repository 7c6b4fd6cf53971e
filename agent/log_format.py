"""A log formatter that appends the ``extra=`` fields of a record as ``key=value`` pairs.

Code logs structured context with ``logger.info("session ended", extra={"session_id": sid})``;
this formatter renders it as ``... session ended session_id=<sid>``. Values of fields whose
names suggest secrets or memory text, and of a message's ``name=<%s>`` fields so named (Strands
writes its values so), are replaced by ``<redacted>``; credential-shaped strings anywhere in the
line (a third-party library's message, a traceback) by ``<redacted-credential>``: see
:func:`redact_credentials`. Control characters in the message and
the fields (a newline that would start a forged line, an ANSI escape) are written escaped
(``\\n``, ``\\x1b``); a traceback stays below the first line. :class:`RedactingFilter` does the
same to the record itself, for a handler that exports it without this formatter (OpenTelemetry's).
"""

from __future__ import annotations

import logging
import re

#: Attributes every LogRecord has (plus those ``Formatter.format`` adds): never rendered as extras.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("token", "authorization", "secret", "password", "credential", "content", "prompt", "text", "input")
_CREDENTIALS = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT (bearer tokens)
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # an AWS access key id
)
# The value after a secret-key / session-token name, as botocore prints XML, JSON, dicts, headers.
_SECRET_VALUES = re.compile(r"(?i)(secret_?access_?key|session_?token|security-token)(\W{1,6}b?['\"]?)[\w/+=]{16,}")
# A Secrets Manager secret's value, as botocore's DEBUG dump of a response body holds it (JSON
# inside JSON inside a bytes repr, escaped at every level): the rest of the line goes.
_SECRET_STRINGS = re.compile(r"(?i)\b(secret_?string|secret_?binary)\b[\"']?.*")
# A %-placeholder of a message template, with the name of a ``name=<%s>`` field (Strands' style).
_PLACEHOLDER = re.compile(r"(?:(\w+)=<)?%(?:\([^)]*\))?[-#0 +\d.*]*[a-zA-Z%]")
# Characters that would break a line or drive a terminal: C0/C1 controls, Unicode line separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class KeyValueFormatter(logging.Formatter):
    """``logging.Formatter`` whose lines end with the record's extra fields, sorted by name."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        _redact_named_args(record)
        line = super().format(record)
        extras = _extras(record)
        if extras:
            pairs = " ".join(f"{key}={_render(key, value)}" for key, value in extras)
            head, sep, tail = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {pairs}{sep}{tail}"
        return redact_credentials(line)


class RedactingFilter(logging.Filter):
    """Redacts a record in place, for a handler that exports it without a formatter of ours.

    The OpenTelemetry ``LoggingHandler`` (installed by ``opentelemetry-instrument``) sends the
    message as the OTLP body and every extra field and the exception as attributes: the message
    is rendered with credentials redacted, secret-named fields become ``<redacted>``, and the
    traceback is kept as redacted text only (``exc_text``; ``exc_info`` is cleared).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_named_args(record)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: keep the template only
            message = str(record.msg)
        record.msg, record.args = redact_credentials(message), None
        for key, _ in _extras(record):
            if _secret(key):
                setattr(record, key, "<redacted>")
        if record.exc_info:
            record.exc_text = redact_credentials(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        return True


def redact_credentials(text: str) -> str:
    """``text`` with JWTs, AWS access key ids, secret keys, session tokens and Secrets Manager
    secret values (the rest of a line from ``SecretString``/``SecretBinary``) replaced.

    A safety net for lines the app does not write itself; memory text cannot be recognised
    and is kept out by log levels instead (``agent.log_setup``).
    """
    text = _SECRET_STRINGS.sub(r"\1: <redacted-credential>", text)
    return _SECRET_VALUES.sub(r"\1\2<redacted-credential>", _CREDENTIALS.sub("<redacted-credential>", text))


_TRACEBACKS = logging.Formatter()


def _redact_named_args(record: logging.LogRecord) -> None:
    """Replace the arguments of ``name=<%s>`` fields whose names suggest secrets or content.

    Strands writes its values so (``tool_name=<%s>, raw_input=<%s> | ...``), at WARNING too:
    e.g. the raw input of a tool call the model cut off, which is conversation text.
    """
    if not isinstance(record.msg, str) or not isinstance(record.args, tuple) or not record.args:
        return
    args, position = list(record.args), 0
    for match in _PLACEHOLDER.finditer(record.msg):
        if match.group().endswith("%"):  # "%%": a literal percent sign, no argument
            continue
        if position < len(args) and match.group(1) and _secret(match.group(1)):
            args[position] = "<redacted>"
        position += 1
    record.args = tuple(args)


def _extras(record: logging.LogRecord) -> list[tuple[str, object]]:
    return sorted((k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))


def _secret(key: str) -> bool:
    return any(word in key.lower() for word in _SECRET_WORDS)


def _render(key: str, value: object) -> str:
    if _secret(key):
        return "<redacted>"
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + escape_controls(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    return escape_controls(text)


def escape_controls(text: str) -> str:
    """``text`` with control and line-separator characters written as Python escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
