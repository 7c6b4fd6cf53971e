"""Run the operations CLI (``python -m scripts``) in-process in tests and capture its output."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

import pytest

from scripts.__main__ import main


@dataclass
class Result:
    """Exit code and captured output of one CLI run."""

    code: int
    out: str
    err: str


def cli_runner(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """A function running ``python -m scripts <argv>`` in-process, returning a Result."""

    def run(*argv: str) -> Result:
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def outputs(text: str) -> dict[str, str]:
    """The ``name: value`` lines a report prints after its table (ids, ARNs, next steps)."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and not line.startswith(("==", " ")) and name == name.strip():
            found[name] = value
    return found


def lose_first_response(monkeypatch: pytest.MonkeyPatch, module: ModuleType, service: str, operation: str) -> list[str]:
    """Make the first ``operation`` call of the clients ``module.aws_client`` builds be sent again
    by botocore as if its response had been lost (a read timeout after the service acted);
    returns the url paths resent."""
    real, resent = module.aws_client, []

    def resend_once(request_dict: dict[str, Any], **_: Any) -> int | None:
        if not resent:
            resent.append(request_dict["url_path"])
            return 0  # botocore's needs-retry answer: send the request again after 0 s
        return None

    def losing(name: str, region: str) -> Any:
        client = real(name, region)
        if name == service:
            client.meta.events.register(f"needs-retry.{service}.{operation}", resend_once)
        return client

    monkeypatch.setattr(module, "aws_client", losing)
    return resent
