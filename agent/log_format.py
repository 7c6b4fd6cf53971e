"""A log formatter that appends the ``extra=`` fields of a record as ``key=value`` pairs.

Code logs structured context with ``logger.info("session ended", extra={"session_id": sid})``;
this formatter renders it as ``... session ended session_id=<sid>``. Values of fields whose
names suggest secrets or memory text are replaced by ``<redacted>``.
"""

from __future__ import annotations

import logging

#: Attributes every LogRecord has (plus those ``Formatter.format`` adds): never rendered as extras.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("token", "authorization", "secret", "password", "credential", "content", "prompt", "text")


class KeyValueFormatter(logging.Formatter):
    """``logging.Formatter`` whose lines end with the record's extra fields, sorted by name."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = sorted((k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        if not extras:
            return line
        pairs = " ".join(f"{key}={_render(key, value)}" for key, value in extras)
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {pairs}{sep}{tail}"


def _render(key: str, value: object) -> str:
    if any(word in key.lower() for word in _SECRET_WORDS):
        return "<redacted>"
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text
