"""The app's logging: its own packages at ``AGENT_LOG_LEVEL``, third-party libraries at WARNING.

At DEBUG, botocore logs every request's parameters and every response body: the tenant's
``SecretAccessKey`` and ``SessionToken`` from STS AssumeRole, PutVectors ``content`` (memory
text), Bedrock prompts; strands logs messages and tool inputs. So ``AGENT_LOG_LEVEL`` applies to
:data:`OWN_PACKAGES` only, whose code never logs tokens, credentials or memory text at any level;
every other logger stays at WARNING or above. ``AGENT_UNSAFE_LOG_THIRD_PARTY=true`` lifts that
floor for debugging: memory text and prompts then reach the log (never use it in production).
Whatever the setting, the formatter still redacts credential-shaped strings (JWTs, AWS access
key ids, secret keys and session tokens; :func:`agent.log_format.redact_credentials`).

Under ``opentelemetry-instrument`` with logs export on (the AWS distro turns it on with
``AGENT_OBSERVABILITY_ENABLED=true``), the root logger already holds OpenTelemetry's
``LoggingHandler``, the OTLP path of the logs to CloudWatch: it is kept, and sees records
redacted the same way (:class:`agent.log_format.RedactingFilter`).
"""

from __future__ import annotations

import logging
from typing import TextIO

from agent.log_format import KeyValueFormatter, RedactingFilter

#: Loggers that follow AGENT_LOG_LEVEL.
OWN_PACKAGES = ("agent", "auth", "memory", "scripts")
#: The lowest level any other logger gets unless AGENT_UNSAFE_LOG_THIRD_PARTY is set.
THIRD_PARTY_FLOOR = logging.WARNING
#: The AgentCore SDK's request logger (its own handler; operational lines at INFO, nothing sensitive).
SDK_LOGGER = "bedrock_agentcore.app"
LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_REDACT = RedactingFilter()


def configure_logging(level: str, *, unsafe_third_party: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Install the one root handler (key=value lines, credentials redacted) and the levels.

    Args:
        level: ``AGENT_LOG_LEVEL`` (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR``) for OWN_PACKAGES.
        unsafe_third_party: Let third-party loggers follow ``level`` too (may log memory text).
        stream: Where lines go (default: stderr).

    Returns:
        The installed handler (replacing any handler the root logger had but OpenTelemetry's).
    """
    numeric = logging.getLevelName(level)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KeyValueFormatter(LINE_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old).__module__.startswith("opentelemetry."):  # OTLP export: kept, fed redacted records
            old.setFormatter(logging.Formatter("%(message)s"))
            old.addFilter(_REDACT)
        else:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric if unsafe_third_party else max(numeric, THIRD_PARTY_FLOOR))
    for name in OWN_PACKAGES:
        logging.getLogger(name).setLevel(numeric)
    logging.getLogger("bedrock_agentcore").propagate = False  # the SDK logs through its own handler
    logging.getLogger(SDK_LOGGER).setLevel(numeric if unsafe_third_party else max(numeric, logging.INFO))
    return handler
