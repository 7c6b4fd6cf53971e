"""Run the operations CLI (``python -m scripts``) in-process in tests and capture its output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
