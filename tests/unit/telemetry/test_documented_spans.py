"""Every span name the source creates is in the README's Observability span table, and every
name in that table is created somewhere (a renamed span leaves neither side stale)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("agent", "auth", "memory", "telemetry")
#: A span opened with a literal name: ``span("x.y")``, ``background_span("x.y")``, ``traced("x.y")``.
LITERAL = re.compile(r"\b(?:span|traced)\(\s*\"([a-z_]+(?:\.[a-z_]+)+)\"")


def source_span_names() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names.update(LITERAL.findall(path.read_text()))
    return names


def readme_span_names() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Observability", 1)[1].split("\nEvery span also carries", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", row)}


def test_the_source_and_the_span_table_name_the_same_literal_spans() -> None:
    source, documented = source_span_names(), readme_span_names()
    assert {"memory.checkpoint", "memory.summarize", "auth.verify_token"} <= source  # the scan works
    assert source - documented == set(), "spans the README's table does not list"
    assert {name for name in documented if name.count(".") and name not in source} <= {
        "memory.inject", "memory.recall", "memory.summary",  # built from a variable (f"memory.{op}", task name)
    }
