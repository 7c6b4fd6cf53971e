"""The Makefile's documented ``make bench`` examples: make hands BENCH_ARGS (and ``--json`` with
BENCH_JSON) to every benchmark named in BENCH, so each of them must accept those arguments, or
a copied example stops with a usage error after the first benchmarks have run for minutes.
Only the argument parsing runs here, never a benchmark."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ALL = sorted(path.stem.removeprefix("bench_") for path in (ROOT / "bench").glob("bench_*.py"))


def documented_examples() -> list[tuple[str, list[str]]]:
    """(benchmark, argv) for every benchmark each ``#   make bench ...`` comment line runs."""
    found = []
    for line in re.findall(r"^#\s+(make bench\b[^(\n]*)", (ROOT / "Makefile").read_text(), flags=re.M):
        variables = dict(word.split("=", 1) for word in shlex.split(line)[2:] if "=" in word)
        argv = (["--json"] if variables.get("BENCH_JSON") else []) + shlex.split(variables.get("BENCH_ARGS", ""))
        found += [(name, argv) for name in variables.get("BENCH", "").split() or ALL]
    return found


class _Parsed(Exception):
    """Raised instead of running the benchmark once its arguments are parsed."""


def test_the_makefile_documents_examples() -> None:
    examples = documented_examples()
    assert any(argv for _, argv in examples) and {name for name, _ in examples} == set(ALL)


@pytest.mark.parametrize(("name", "argv"), documented_examples())
def test_each_benchmark_of_a_documented_example_accepts_its_arguments(
    name: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = importlib.import_module(f"bench.bench_{name}")
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(parse(self, *args, **kwargs))  # type: ignore[arg-type]

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [f"bench_{name}.py", *argv])
    try:
        module.main()
    except _Parsed:
        return
    except SystemExit:
        pytest.fail(f"`make bench` passes {argv} to bench_{name}, which refuses them: {capsys.readouterr().err}")
    pytest.fail(f"bench_{name}.main() never parsed its arguments")
