"""A log formatter that appends the ``extra=`` fields of a record as ``key=value`` pairs.

Code logs structured context with ``logger.info("session ended", extra={"session_id": sid})``;
this formatter renders it as ``... session ended session_id=<sid>``. Values of fields whose
names suggest secrets or memory text are replaced by ``<redacted>``, and credential-shaped
strings anywhere in the line (a third-party library's message, a traceback) by
``<redacted-credential>``: see :func:`redact_credentials`.
"""

from __future__ import annotations

import logging
import re

#: Attributes every LogRecord has (plus those ``Formatter.format`` adds): never rendered as extras.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("token", "authorization", "secret", "password", "credential", "content", "prompt", "text")
_CREDENTIALS = re.compile(
    r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # a JWT (bearer tokens)
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"  # an AWS access key id
)
# The value after a secret-key / session-token name, as botocore prints XML, JSON, dicts, headers.
_SECRET_VALUES = re.compile(r"(?i)(secret_?access_?key|session_?token|security-token)(\W{1,6}b?['\"]?)[\w/+=]{16,}")


class KeyValueFormatter(logging.Formatter):
    """``logging.Formatter`` whose lines end with the record's extra fields, sorted by name."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = sorted((k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        if extras:
            pairs = " ".join(f"{key}={_render(key, value)}" for key, value in extras)
            head, sep, tail = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {pairs}{sep}{tail}"
        return redact_credentials(line)


def redact_credentials(text: str) -> str:
    """``text`` with JWTs, AWS access key ids, secret keys and session tokens replaced.

    A safety net for lines the app does not write itself; memory text cannot be recognised
    and is kept out by log levels instead (``agent.log_setup``).
    """
    return _SECRET_VALUES.sub(r"\1\2<redacted-credential>", _CREDENTIALS.sub("<redacted-credential>", text))


def _render(key: str, value: object) -> str:
    if any(word in key.lower() for word in _SECRET_WORDS):
        return "<redacted>"
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text
