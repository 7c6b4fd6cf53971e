"""Hybrid ranking of dense candidates: BM25 over their text, reciprocal-rank fusion, one per conversation.

A store over-fetches dense candidates (``DENSE_CANDIDATES``, S3 Vectors' ``topK`` limit, with
metadata), then :func:`hybrid_rank` scores the candidates' ``content`` lexically (Okapi BM25,
statistics over the candidate set), fuses the dense and lexical rankings by reciprocal rank,
drops candidates whose cosine similarity is below the embedder's floor, and keeps the best
unit of each conversation (a conversation's summary and excerpts compete; see
``memory.pipeline.units``). Both backends run this same code on the hits of
``VectorIndex.query``.

BM25 is a small scorer of our own: over at most 100 short texts a library would add an index
build per query (``bm25s`` needs SciPy; ``rank-bm25`` has had no release since 2022).
Tokenised texts are cached per key and content (``TokenCache``), so a warm query only scores.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Sequence

from memory import telemetry
from memory.index.limits import MAX_TOP_K
from memory.types import QueryHit

#: Dense candidates fetched per query (S3 Vectors' topK maximum).
DENSE_CANDIDATES = MAX_TOP_K
#: Reciprocal-rank fusion constant (the usual 60: rank 1 vs 10 differ by ~13%).
RRF_K = 60
#: Weight of the lexical ranking in the fusion (dense counts 1). bench/bench_recall.py, whose
#: distractors share the questions' nouns, finds lexical evidence neutral at 0.3 and harmful at
#: 1.0; it still breaks ties on exact names and numbers that a small dense model blurs.
LEXICAL_WEIGHT = 0.3
BM25_K1 = 1.2
BM25_B = 0.75

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    """a about after again all also am an and any are as at be been before being but by can could
    did do does doing for from had has have having he her here hers him his how i i'm if in into is
    it its it's just me my myself no nor not now of off on once only or other our ours out over own
    really same she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why will
    with would you your yours yourself user assistant ok okay yes yeah oh well thanks thank
    s t d ll m re ve""".split()
)


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """A crude suffix strip so "trips"/"trip" and "moving"/"moved" meet (query and text alike)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stemmed words of ``text`` without stopwords."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class TokenCache:
    """Bounded LRU of tokenised texts keyed by (vector key, content); thread-safe."""

    def __init__(self, maxsize: int = 20_000) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[str, str], Counter[str]] = OrderedDict()
        self._lock = threading.Lock()

    def counts(self, key: str, text: str) -> Counter[str]:
        """Term counts of ``text`` (cached under ``key``)."""
        item = (key, text)
        with self._lock:
            found = self._items.get(item)
            if found is not None:
                self._items.move_to_end(item)
                return found
        counts = Counter(tokenize(text))
        with self._lock:
            self._items[item] = counts
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return counts

    def counts_many(self, items: Sequence[tuple[str, str]]) -> list[Counter[str]]:
        """Term counts of each (key, text) pair; one lock round for the cached ones."""
        with self._lock:
            found = [self._items.get(item) for item in items]
            for item, counts in zip(items, found):
                if counts is not None:
                    self._items.move_to_end(item)
        return [counts if counts is not None else self.counts(*item) for item, counts in zip(items, found)]


def bm25_scores(query: Iterable[str], documents: Sequence[Counter[str]]) -> list[float]:
    """Okapi BM25 of each document for the query terms, corpus statistics from ``documents``."""
    terms = set(query)
    if not documents or not terms:
        return [0.0] * len(documents)
    lengths = [sum(d.values()) for d in documents]
    average = (sum(lengths) / len(documents)) or 1.0
    n = len(documents)
    idf = {}
    for term in terms:
        df = sum(1 for d in documents if term in d)
        if df:
            idf[term] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    scores = []
    for doc, length in zip(documents, lengths):
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average)
        score = 0.0
        for term, weight in idf.items():
            tf = doc.get(term, 0)
            if tf:
                score += weight * tf * (BM25_K1 + 1.0) / (tf + norm)
        scores.append(score)
    return scores


@dataclass(frozen=True)
class RankedHit:
    """A candidate kept by :func:`hybrid_rank`: the hit, its cosine similarity and fused score."""

    hit: QueryHit
    similarity: float
    fused: float


def conversation_of(hit: QueryHit) -> tuple[Any, ...]:
    """What units compete within: the conversation (id and start marker), else the key itself."""
    conversation_id = hit.metadata.get("conversation_id")
    if conversation_id is None:
        return ("key", hit.key)
    return ("conversation", conversation_id, hit.metadata.get("opened"))


@telemetry.traced("memory.fusion", lambda query, hits, **options: {
    "memory.candidate.count": len(hits), "memory.top_k": options.get("top_k"),
    "memory.lexical": options.get("lexical", True)})
def hybrid_rank(
    query: str,
    hits: Sequence[QueryHit],
    *,
    top_k: int,
    min_similarity: float,
    cache: TokenCache | None = None,
    lexical: bool = True,
) -> list[RankedHit]:
    """The best ``top_k`` hits, one per conversation, by dense + BM25 reciprocal-rank fusion.

    Args:
        query: The query text (tokenised for BM25).
        hits: Dense candidates, nearest first (``VectorIndex.query`` order).
        top_k: How many results to return at most.
        min_similarity: Candidates below this cosine similarity are dropped before fusion.
        cache: Tokenised candidate texts reused across queries.
        lexical: False ranks by cosine similarity alone (still one result per conversation).

    Returns:
        At most ``top_k`` hits, best first, no two of the same conversation.
    """
    kept = [(h, 1.0 - h.distance) for h in hits if 1.0 - h.distance >= min_similarity]
    if not kept:
        return []
    fused = [1.0 / (RRF_K + rank) for rank in range(1, len(kept) + 1)]
    if lexical:
        cache = cache or TokenCache()
        documents = cache.counts_many([(h.key, str(h.metadata.get("content", ""))) for h, _ in kept])
        lexical_scores = bm25_scores(tokenize(query), documents)
        order = sorted(range(len(kept)), key=lambda i: -lexical_scores[i])
        for rank, i in enumerate(order, start=1):
            if lexical_scores[i] > 0.0:
                fused[i] += LEXICAL_WEIGHT / (RRF_K + rank)
    results: list[RankedHit] = []
    seen: set[tuple[Any, ...]] = set()
    for i in sorted(range(len(kept)), key=lambda i: -fused[i]):
        hit, similarity = kept[i]
        group = conversation_of(hit)
        if group in seen:
            continue
        seen.add(group)
        results.append(RankedHit(hit, similarity, fused[i]))
        if len(results) == top_k:
            break
    return results
