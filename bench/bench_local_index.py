"""LocalIndex.query latency vs plain NumPy brute force on the same vectors, plus recall@10.

Run: ``python -m bench.bench_local_index [--sizes 1000,10000,100000,1000000] [--json]``.
Each size builds a fresh LocalIndex (through ``put``), then times unfiltered queries and
queries filtered to one user (1% of the vectors) against NumPy doing the same exact cosine
top-k (``argpartition``) on an in-memory matrix, the two called alternately. LocalIndex is exact, so recall@10 must be 1.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from bench._common import emit, parser, summary_ms, time_calls
from memory.index.local import LocalIndex
from memory.types import VectorRecord

DIMENSION = 256
USERS = 100
TOP_K = 10
BATCH = 10_000


def _paired(
    a: Callable[[], object], b: Callable[[], object], repeat: int
) -> tuple[list[float], list[float]]:
    """Timings of ``a`` and ``b`` called alternately, so machine load affects both alike."""
    time_calls(a, 0)
    time_calls(b, 0)
    first: list[float] = []
    second: list[float] = []
    for _ in range(repeat):
        first += time_calls(a, 1, warmup=0)
        second += time_calls(b, 1, warmup=0)
    return first, second


def _repeats(size: int) -> int:
    return 200 if size <= 10_000 else 60 if size <= 100_000 else 15


def _numpy_top_k(unit: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    scores = unit @ (query / np.linalg.norm(query))
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best])]


def _build(root: Path, data: np.ndarray) -> tuple[LocalIndex, float]:
    index = LocalIndex(root, "memory-bench", DIMENSION)
    index.ensure()
    started = time.perf_counter()
    for start in range(0, len(data), BATCH):
        index.put(
            [
                VectorRecord(f"k{i}", data[i], {"user_id": f"u{i % USERS}"})
                for i in range(start, min(start + BATCH, len(data)))
            ]
        )
    return index, time.perf_counter() - started


def run_size(size: int, root: Path, rng: np.random.Generator) -> dict[str, object]:
    data = rng.standard_normal((size, DIMENSION), dtype=np.float32)
    index, build_s = _build(root, data)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    users = np.arange(size) % USERS
    queries = rng.standard_normal((32, DIMENSION), dtype=np.float32)
    repeats = _repeats(size)
    cycle = iter(range(10**9))

    def next_query() -> np.ndarray:
        return queries[next(cycle) % len(queries)]

    local_s, baseline_s = _paired(
        lambda: index.query(next_query(), TOP_K),
        lambda: _numpy_top_k(unit, next_query(), TOP_K),
        repeats,
    )
    local, baseline = summary_ms(local_s), summary_ms(baseline_s)

    flt = {"user_id": {"$eq": "u7"}}

    def numpy_filtered() -> np.ndarray:
        rows = np.flatnonzero(users == 7)
        return rows[_numpy_top_k(unit[rows], next_query(), TOP_K)]

    local_fs, baseline_fs = _paired(
        lambda: index.query(next_query(), TOP_K, flt), numpy_filtered, repeats
    )
    local_f, baseline_f = summary_ms(local_fs), summary_ms(baseline_fs)

    recalls = []
    for q in queries[:10]:
        exact = {f"k{i}" for i in _numpy_top_k(unit, q, TOP_K)}
        got = {h.key for h in index.query(q, TOP_K)}
        recalls.append(len(exact & got) / TOP_K)
    recall = float(np.mean(recalls))
    assert recall == 1.0, f"LocalIndex is exact; recall@10 was {recall}"
    index.drop()
    return {
        "vectors": size,
        "build_s": build_s,
        "local_p50_ms": local["p50_ms"],
        "local_p99_ms": local["p99_ms"],
        "numpy_p50_ms": baseline["p50_ms"],
        "numpy_p99_ms": baseline["p99_ms"],
        "ratio_p50": local["p50_ms"] / baseline["p50_ms"],
        "filtered_p50_ms": local_f["p50_ms"],
        "numpy_filtered_p50_ms": baseline_f["p50_ms"],
        "filtered_ratio": local_f["p50_ms"] / baseline_f["p50_ms"],
        "recall@10": recall,
    }


def main() -> None:
    args_parser = parser("bench.bench_local_index", __doc__.splitlines()[0])
    args_parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    args = args_parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rng = np.random.default_rng(42)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_size(size, Path(tmp), rng) for size in sizes]
    emit(f"LocalIndex.query vs NumPy brute force ({DIMENSION}-d, top_k={TOP_K})", rows, args.json)


if __name__ == "__main__":
    main()
