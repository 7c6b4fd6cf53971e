"""LocalEmbedder (WordLlama l2_supercat, 256-d) throughput against cheap baselines.

Run: ``python -m bench.bench_embedder [--sentences 5000] [--json]``. Baselines in the same
run: SHA-256 of each text (a floor for touching every string) and NumPy normalisation of
precomputed 256-d vectors (the arithmetic the embedder must do anyway).
"""

from __future__ import annotations

import hashlib
import time

import numpy as np

from bench._common import emit, parser, summary_ms, time_calls

WORDS = (
    "budget spend quarter marketing travel paris flight hotel python code review meeting "
    "customer invoice deadline project launch team manager report revenue growth plan"
).split()


def _sentences(n: int, rng: np.random.Generator) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 16))) for _ in range(n)]


def _rate(fn, items: int, repeat: int = 3) -> float:
    best = min(time_calls(fn, repeat, warmup=1))
    return items / best


def main() -> None:
    p = parser("bench.bench_embedder", __doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=5000)
    args = p.parse_args()
    from memory.embedders.local import LocalEmbedder

    rng = np.random.default_rng(0)
    texts = _sentences(args.sentences, rng)
    started = time.perf_counter()
    embedder = LocalEmbedder()
    embedder.embed(["warm up"], "index")
    load_s = time.perf_counter() - started
    vectors = rng.standard_normal((len(texts), 256), dtype=np.float32)

    def normalise() -> np.ndarray:
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    embed_rate = _rate(lambda: embedder.embed(texts, "index"), len(texts))
    hash_rate = _rate(lambda: [hashlib.sha256(t.encode()).digest() for t in texts], len(texts))
    norm_rate = _rate(normalise, len(texts))
    single = summary_ms(time_calls(lambda: embedder.embed([texts[0]], "retrieval"), 300))
    rows = [
        {"method": "LocalEmbedder.embed (batch)", "sentences_per_s": embed_rate, "ratio_vs_embed": 1.0},
        {"method": "baseline: sha256 per text", "sentences_per_s": hash_rate,
         "ratio_vs_embed": hash_rate / embed_rate},
        {"method": "baseline: NumPy normalise 256-d", "sentences_per_s": norm_rate,
         "ratio_vs_embed": norm_rate / embed_rate},
    ]
    emit(f"Embedding throughput ({len(texts)} sentences; model load {load_s:.2f} s)", rows, args.json)
    emit("One query embedding (what retrieve() does)",
         [{"method": "LocalEmbedder.embed (1 text)", **single}], args.json)


if __name__ == "__main__":
    main()
