"""Shared helpers for the benchmarks: timing, percentiles, a printed table and ``--json`` output."""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from memory.errors import ConfigurationError


def sha256_checked(path: Path, sha256: str) -> Path:
    """``path`` itself if its content has this sha256 (a pinned model file), else ConfigurationError."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise ConfigurationError(f"{path.name} has sha256 {digest}, expected {sha256}")
    return path


def parser(module: str, description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--json`` flag every benchmark accepts, its usage line the
    command a user types (``python -m <module>``, not the file name argparse takes from argv)."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    p.add_argument("--json", action="store_true", help="print results as JSON instead of a table")
    return p


def time_calls(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``samples`` by nearest rank."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50, p99 and mean of ``samples`` in milliseconds."""
    return {
        "p50_ms": percentile(samples, 50) * 1e3,
        "p99_ms": percentile(samples, 99) * 1e3,
        "mean_ms": statistics.fmean(samples) * 1e3,
    }


def emit(title: str, rows: list[dict[str, Any]], as_json: bool) -> None:
    """Print ``rows`` as an aligned table (or, with ``--json``, one JSON document on one line,
    so a benchmark printing several tables writes valid JSON Lines)."""
    if as_json:
        json.dump({"benchmark": title, "rows": rows}, sys.stdout)
        sys.stdout.write("\n")
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_fmt(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
