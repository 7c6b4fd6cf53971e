"""Hybrid ranking of dense candidates: BM25 over their text, score fusion, one per conversation.

A store over-fetches dense candidates (``DENSE_CANDIDATES``, S3 Vectors' ``topK`` limit, with
metadata), then :func:`hybrid_rank` drops candidates whose cosine similarity is below the
embedder's floor, scores the rest's ``content`` lexically (Okapi BM25, statistics over those
candidates), fuses the two scores (below), weighs the fused score by unit type
(``UNIT_TYPE_WEIGHTS``: excerpts count less than statements and summaries), divides the fused
score of a unit that several conversations said (nearly) word for word by ``1 + ln(conversations)``
(the redundancy penalty below), adds a bonus for words few candidate conversations said
(specificity, below), and keeps the best unit of each conversation (a conversation's
units compete; see ``memory.pipeline.units``). Both backends run this same code on the hits of
``VectorIndex.query``.

Fusion: each candidate's cosine similarity over the best candidate's, plus ``LEXICAL_WEIGHT``
times its BM25 score over the best BM25 score (both relative to the candidates, so an embedder's
overall cosine scale does not change the balance). Scores, not ranks: a fact that is the nearest
by a wide cosine margin keeps that margin, where reciprocal-rank fusion (the previous fusion,
``by_rank``) gave the 1st and the 2nd nearest nearly the same weight and let a filler unit that
shares the question's noun overtake it. bench/bench_recall.py measures it (row I against G: R@1
+2.2 / +1.2 / +1.8 and injected +0.8 / +1.4 / +1.7 points on seeds 12 / 7 / 3, the weight
chosen on seed 12 alone).

Redundancy: what a user says in many conversations ("my knees hurt after running", a recurring
complaint) is background, not what tells one conversation from the others; left alone, its
copies fill the injected top 5, one per conversation, and push out the one conversation that
holds the answer. It is the inverse document frequency of BM25 applied to whole units, counted
among the candidates (no corpus statistics, so S3 Vectors runs it too): units whose content
words are equal, or equal but for one extra word ("Oh, and my knees hurt..."), form a group,
and each member's fused score is divided by ``1 + ln n`` for the ``n`` conversations of its
group. A unit said once keeps its score; a conversation whose repeated sentence is demoted
still competes with its other units (summary, excerpts). bench/bench_recall.py measures it
(injected +4.2 / +7.5 points on seeds 12 / 7; its generated filler repeats more than real users
do, so that is an upper bound). Units equal but for one word swapped group too when more than
``RARE_CONVERSATIONS`` candidate conversations hold both words: "my plan for Monday is mostly
emails" and "... for Friday ..." are one remark, while a fact and its new value ("We rent a
place in Denver" / "... in Austin"), whose words one or two conversations hold, stay apart
(row K against J: R@1 0 / +0.6 / +0.6 and injected +1.2 / +0.4 / 0 points on seeds 12 / 7 / 3).

Specificity: a unit that says something only one or two conversations said ("Sold the Ford Focus
and bought a Hyundai Ioniq 5") is more likely the fact a question asks for than one made of what
many conversations say (chatter, recurring complaints), whose words alone tell no conversation
apart. Each unit's fused score gains ``SPECIFICITY_WEIGHT`` times the share of its content words
(the query's left out: those BM25 already weighs) that at most ``RARE_CONVERSATIONS`` candidate
conversations hold (document frequency over the candidates' conversations, no corpus statistics,
so S3 Vectors runs it too). Two, not one: an updated fact shares its slot's old value with the
conversation that first stated it. Where the redundancy penalty demotes whole sentences said in
several conversations, this weighs single words. bench/bench_recall.py measures it (row J
against I: R@1 +1.9 / +3.5 / +2.2 and injected +3.2 / +1.5 / +6.7 points on seeds 12 / 7 / 3,
updated facts injected 0.43 -> 0.63 on seed 12; chosen on seed 12 alone, seeds 1, 2, 4 and 5
gain too); its generated chatter comes from small pools, so it repeats more than real users do
and the gain is an upper bound, and dated events told in common words ("this morning I ran my
first half marathon") lose a few points.

BM25 is a small scorer of our own: over at most 100 short texts a library would add an index
build per query (``bm25s`` needs SciPy; ``rank-bm25`` has had no release since 2022).
Tokenised texts are cached per key and content (``TokenCache``), so a warm query only scores;
a ``MultiTenantStore``'s tenants share one bounded cache, each entry keyed by its tenant.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

from memory import telemetry
from memory.index.limits import MAX_TOP_K
from memory.types import QueryHit

#: Dense candidates fetched per query (S3 Vectors' topK maximum).
DENSE_CANDIDATES = MAX_TOP_K
#: Weight of the BM25 score (over the best candidate's) in the fusion, where the cosine similarity
#: (over the best candidate's) counts 1. bench/bench_recall.py, whose distractors share the
#: questions' nouns, ranks alike from 0.1 to 0.15 on its seed 12 (R@1 about a point lower at 0.2
#: and at 0, dense alone); lexical evidence still breaks ties on exact names and numbers that a
#: small dense model blurs.
LEXICAL_WEIGHT = 0.15
#: Reciprocal-rank fusion (``by_rank``, the previous fusion): its constant (the usual 60: rank 1
#: vs 10 differ by ~13%) and the lexical ranking's weight (dense counts 1).
RRF_K = 60
RANK_LEXICAL_WEIGHT = 0.3
BM25_K1 = 1.2
BM25_B = 0.75
#: Units of this many content words or fewer also group with a copy lacking one of them.
NEAR_COPY_MAX_TERMS = 16
#: Units of at least this many (and at most ``NEAR_COPY_MAX_TERMS``) content words also group with
#: a copy that swaps one of them, when more than ``RARE_CONVERSATIONS`` candidate conversations
#: hold both words (templated chatter: "my plan for Monday is mostly emails" / "... for Friday ...").
SWAP_MIN_TERMS = 4
#: Fused-score weight per unit ``type`` (others 1). An excerpt (``memory.pipeline.units``: two
#: turns, both speakers) blends several topics and the assistant's generic advice, so it sits near
#: many questions; the user's facts are also in that conversation's statement and summary units,
#: and the excerpt is kept for what they lose (what the assistant said, a fact spread over two
#: turns). 0.75 ranks an excerpt as if its similarity were a quarter lower (under reciprocal-rank
#: fusion: as if about 20 places lower): the price is paid by facts only an excerpt holds, which
#: bench_recall (all facts stated by the user) does not measure. Chosen on its seed 12 under
#: reciprocal-rank fusion (0.6-0.75 rank alike; the mildest kept; a cosine offset instead of a
#: weight did worse), seed 7 held out; under score fusion 0.65-0.8 rank alike.
UNIT_TYPE_WEIGHTS: Mapping[str, float] = MappingProxyType({"excerpt": 0.75})
#: Specificity (module docstring): the fused score gains this weight times the share of a unit's
#: content words (not the query's) that at most ``RARE_CONVERSATIONS`` candidate conversations
#: hold. bench/bench_recall.py's seed 12: 0.2-0.4 alike (R@1 +1.3 to +1.9 points), 0.3 best for
#: injected; one or three conversations instead of two gain less.
SPECIFICITY_WEIGHT = 0.3
RARE_CONVERSATIONS = 2

_WORD = re.compile(r"[a-z0-9]+")
#: Words the lexical scorer ignores (lower case).
STOPWORDS = frozenset(
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
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class TokenCache:
    """Bounded LRU of tokenised texts keyed by (vector key, content); thread-safe.

    :meth:`scoped` gives views that share this cache's entries and bound but key each entry by
    their namespace too (a ``MultiTenantStore`` gives each tenant one: the whole store holds at
    most ``maxsize`` entries, and no tenant ever reads another's).
    """

    def __init__(self, maxsize: int = 20_000) -> None:
        """Create an empty cache of at most ``maxsize`` entries."""
        self.maxsize = maxsize
        self.namespace = ""
        self._items: OrderedDict[tuple[str, str, str], tuple[Counter[str], frozenset[str]]] = OrderedDict()
        self._lock = threading.Lock()

    def scoped(self, namespace: str) -> "TokenCache":
        """A view of this cache (same entries, same bound) whose keys carry ``namespace``."""
        view = TokenCache(self.maxsize)
        view._items, view._lock, view.namespace = self._items, self._lock, namespace
        return view

    def entries(self, items: Sequence[tuple[str, str]]) -> list[tuple[Counter[str], frozenset[str]]]:
        """Term counts and term set of each (key, text) pair; one lock round for the cached ones."""
        keys = [(self.namespace, key, text) for key, text in items]
        with self._lock:
            found = [self._items.get(key) for key in keys]
            for key, entry in zip(keys, found):
                if entry is not None:
                    self._items.move_to_end(key)
        result: list[tuple[Counter[str], frozenset[str]]] = []
        fresh: dict[tuple[str, str, str], tuple[Counter[str], frozenset[str]]] = {}
        for key, entry in zip(keys, found):
            if entry is None:
                counts = Counter(tokenize(key[2]))
                entry = fresh[key] = (counts, frozenset(counts))
            result.append(entry)
        if fresh:
            with self._lock:
                self._items.update(fresh)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)
        return result

    def counts(self, key: str, text: str) -> Counter[str]:
        """Term counts of ``text`` (cached under ``key``)."""
        return self.entries([(key, text)])[0][0]

    def counts_many(self, items: Sequence[tuple[str, str]]) -> list[Counter[str]]:
        """Term counts of each (key, text) pair."""
        return [counts for counts, _ in self.entries(items)]


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


@lru_cache(maxsize=65536)
def _one_shorter(terms: frozenset[str]) -> tuple[frozenset[str], ...]:
    """``terms`` minus each one of its terms (for sets of 3 to ``NEAR_COPY_MAX_TERMS`` terms)."""
    if not 3 <= len(terms) <= NEAR_COPY_MAX_TERMS:
        return ()
    return tuple(terms - {term} for term in terms)


@lru_cache(maxsize=65536)
def _without_each(terms: frozenset[str]) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each term of ``terms`` with the set minus it (sets of ``SWAP_MIN_TERMS`` to
    ``NEAR_COPY_MAX_TERMS`` terms)."""
    if not SWAP_MIN_TERMS <= len(terms) <= NEAR_COPY_MAX_TERMS:
        return ()
    return tuple((term, terms - {term}) for term in terms)


def conversation_counts(term_sets: Sequence[frozenset[str]], conversations: Sequence[Any]) -> Counter[str]:
    """How many of the ``conversations`` hold each term (a conversation's terms: its units')."""
    said: dict[Any, set[str]] = {}
    for terms, conversation in zip(term_sets, conversations):
        said.setdefault(conversation, set()).update(terms)
    return Counter(chain.from_iterable(said.values()))


def near_copy_groups(term_sets: Sequence[frozenset[str]], held_by: Mapping[str, int] | None = None) -> list[int]:
    """A group number per set: equal sets, and sets equal but for one extra term, share a group.

    Grouping is transitive ("my knees hurt", "oh my knees hurt" and "anyway my knees hurt" are one
    group). Sets longer than ``NEAR_COPY_MAX_TERMS`` group only with equal sets. With ``held_by``
    (``conversation_counts``), sets of ``SWAP_MIN_TERMS`` terms or more that are equal but for one
    term swapped group too, when more than ``RARE_CONVERSATIONS`` conversations hold both swapped
    terms: "my plan for Monday is mostly emails" and "... for Friday ..." are one remark, while
    "We rent a place in Denver ..." and "... in Austin ..." (a fact and its new value, held by one
    or two conversations) stay apart.
    """
    first: dict[frozenset[str], int] = {}
    parent = [first.setdefault(terms, i) for i, terms in enumerate(term_sets)]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        a, b = root(i), root(j)
        if a != b:
            parent[a] = b

    swapped: dict[frozenset[str], int] = {}
    for i, terms in enumerate(term_sets):
        for shorter in first.keys() & _one_shorter(terms):
            join(i, first[shorter])
        if held_by is not None:
            for term, rest in _without_each(terms):
                if held_by.get(term, 0) > RARE_CONVERSATIONS:
                    join(i, swapped.setdefault(rest, i))
    return [root(i) for i in range(len(term_sets))]


def redundancy_divisors(
    term_sets: Sequence[frozenset[str]], conversations: Sequence[Any], held_by: Mapping[str, int] | None = None
) -> list[float]:
    """``1 + ln n`` per unit, ``n`` = how many conversations said the unit's near-copy group
    (``near_copy_groups``; with ``held_by``, copies with a common word swapped are near copies)."""
    groups = near_copy_groups(term_sets, held_by)
    said_in: dict[int, set[Any]] = {}
    for group, conversation in zip(groups, conversations):
        said_in.setdefault(group, set()).add(conversation)
    divisor = {group: 1.0 + math.log(len(said)) for group, said in said_in.items()}
    return [divisor[group] for group in groups]


def specificity_scores(
    term_sets: Sequence[frozenset[str]], query_terms: frozenset[str], held_by: Mapping[str, int]
) -> list[float]:
    """Per unit, the share of its terms outside ``query_terms`` that at most ``RARE_CONVERSATIONS``
    conversations hold (``held_by``: ``conversation_counts`` of the candidates); 0 for a unit with
    no such term."""
    scores = []
    for terms in term_sets:
        own = terms - query_terms
        rare = sum(1 for term in own if held_by.get(term, 0) <= RARE_CONVERSATIONS)
        scores.append(rare / len(own) if own else 0.0)
    return scores


def score_fusion(similarities: Sequence[float], lexical_scores: Sequence[float]) -> list[float]:
    """Each cosine similarity over the best one, plus ``LEXICAL_WEIGHT`` x BM25 over the best BM25.

    ``lexical_scores`` empty (lexical off) or all zero adds nothing. The similarities are divided
    by the larger of the best one and their range (best - worst): by the best one while none is
    negative (their range is smaller), by the range when the best one is near or below 0 (only
    when the caller keeps such candidates), so the scores do not jump as the best crosses 0
    (divided by a tiny best, the others dwarfed the lexical term). All equal and not positive:
    left as they are.
    """
    best = max(similarities, default=0.0)
    scale = max(best, best - min(similarities, default=0.0)) or 1.0
    fused = [similarity / scale for similarity in similarities]
    top = max(lexical_scores, default=0.0)
    if top > 0.0:
        fused = [score + LEXICAL_WEIGHT * lexical / top for score, lexical in zip(fused, lexical_scores)]
    return fused


def rank_fusion(lexical_scores: Sequence[float], count: int) -> list[float]:
    """Reciprocal-rank fusion of the dense order (candidates nearest first) and the BM25 order."""
    fused = [1.0 / (RRF_K + rank) for rank in range(1, count + 1)]
    order = sorted(range(len(lexical_scores)), key=lambda i: -lexical_scores[i])
    for rank, i in enumerate(order, start=1):
        if lexical_scores[i] > 0.0:
            fused[i] += RANK_LEXICAL_WEIGHT / (RRF_K + rank)
    return fused


def demoted(score: float, factor: float) -> float:
    """``score`` weighed by ``factor`` > 0: multiplied if not negative, else divided, so that a
    factor below 1 ranks it lower whatever its sign (negative only below a floor of 0)."""
    return score * factor if score >= 0.0 else score / factor


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
    "memory.lexical": options.get("lexical", True), "memory.redundancy": options.get("redundancy", True),
    "memory.specificity": options.get("specificity", True)})
def hybrid_rank(
    query: str,
    hits: Sequence[QueryHit],
    *,
    top_k: int,
    min_similarity: float,
    cache: TokenCache | None = None,
    lexical: bool = True,
    redundancy: bool = True,
    swaps: bool = True,
    specificity: bool = True,
    type_weights: Mapping[str, float] = UNIT_TYPE_WEIGHTS,
    by_rank: bool = False,
) -> list[RankedHit]:
    """The best ``top_k`` hits, one per conversation, by dense + BM25 score fusion.

    Args:
        query: The query text (tokenised for BM25).
        hits: Dense candidates, nearest first (``VectorIndex.query`` order).
        top_k: How many results to return at most.
        min_similarity: Candidates below this cosine similarity are dropped before fusion.
        cache: Tokenised candidate texts reused across queries.
        lexical: False ranks by cosine similarity alone (still one result per conversation).
        redundancy: False skips the redundancy penalty (units said in several conversations).
        swaps: False leaves copies with a common word swapped out of the redundancy penalty's groups
            (the penalty before row K, for bench_recall).
        specificity: False skips the bonus for words few candidate conversations said (its weight
            is on score fusion's scale: pass False with ``by_rank``).
        type_weights: Fused-score weight per metadata ``type`` (``{}``: none).
        by_rank: True fuses by reciprocal rank instead (the previous fusion, for bench_recall).

    Returns:
        At most ``top_k`` hits, best first, no two of the same conversation.
    """
    kept = [(h, 1.0 - h.distance) for h in hits if 1.0 - h.distance >= min_similarity]
    if not kept:
        return []
    cache = cache or TokenCache()
    entries = cache.entries([(h.key, str(h.metadata.get("content", ""))) for h, _ in kept])
    query_terms = tokenize(query)
    lexical_scores = bm25_scores(query_terms, [counts for counts, _ in entries]) if lexical else []
    if by_rank:
        fused = rank_fusion(lexical_scores, len(kept))
    else:
        fused = score_fusion([similarity for _, similarity in kept], lexical_scores)
    if type_weights:
        fused = [demoted(score, type_weights.get(str(h.metadata.get("type")), 1.0)) for score, (h, _) in zip(fused, kept)]
    conversations = [conversation_of(h) for h, _ in kept]
    term_sets = [terms for _, terms in entries]
    held_by = conversation_counts(term_sets, conversations) if specificity or (redundancy and swaps) else None
    if redundancy:
        divisors = redundancy_divisors(term_sets, conversations, held_by if swaps else None)
        fused = [demoted(score, 1.0 / divisor) for score, divisor in zip(fused, divisors)]
    if specificity and held_by is not None:
        shares = specificity_scores(term_sets, frozenset(query_terms), held_by)
        fused = [score + SPECIFICITY_WEIGHT * share for score, share in zip(fused, shares)]
    results: list[RankedHit] = []
    seen: set[tuple[Any, ...]] = set()
    for i in sorted(range(len(kept)), key=lambda i: -fused[i]):
        hit, similarity = kept[i]
        group = conversations[i]
        if group in seen:
            continue
        seen.add(group)
        results.append(RankedHit(hit, similarity, fused[i]))
        if len(results) == top_k:
            break
    return results
