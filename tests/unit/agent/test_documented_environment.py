"""Every environment variable the app's code reads by name is documented (README or .env.example):
a setting the app honours but nobody can find is a surprise in production."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("agent", "auth", "memory", "telemetry", "tenant_ids")
READ = re.compile(r"(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*\"([A-Z][A-Z0-9_]+)\"")


def variables_read() -> set[str]:
    return {name for package in PACKAGES for path in (ROOT / package).rglob("*.py")
            for name in READ.findall(path.read_text())}


def test_every_variable_the_code_reads_is_documented() -> None:
    names = variables_read()
    assert {"XDG_STATE_HOME", "DOCKER_CONTAINER"} <= names  # the scan finds reads
    documented = (ROOT / "README.md").read_text() + (ROOT / ".env.example").read_text()
    assert {name for name in names if not re.search(rf"\b{name}\b", documented)} == set()
