"""Hybrid ranking (dense over-fetch, BM25, reciprocal-rank fusion, one result per conversation) as a
function and through both stores: LocalIndex and S3 Vectors under moto with the QueryVectors route."""

from __future__ import annotations

from collections import Counter

import pytest

from memory.embedders.local import LocalEmbedder
from memory.stores import hybrid
from memory.stores.hybrid import TokenCache, bm25_scores, hybrid_rank, tokenize
from memory.stores.single_tenant import SingleTenantStore
from memory.types import MemoryUnit, QueryHit, Scope

SCOPE = Scope("alice", agent_name="orchestrator")


def hit(key: str, similarity: float, content: str, conversation: str | None = None) -> QueryHit:
    metadata = {"content": content, "user_id": "alice"}
    if conversation is not None:
        metadata["conversation_id"] = conversation
    return QueryHit(key, 1.0 - similarity, metadata)


def test_tokenize_drops_stopwords_and_folds_simple_suffixes() -> None:
    assert tokenize("What did I name the puppies?") == ["name", "puppy"]
    assert tokenize("We passed, she passes; passing!") == ["pass", "pass", "pass"]


def test_bm25_prefers_the_rare_term_and_ignores_documents_without_any() -> None:
    docs = [Counter(tokenize(t)) for t in ("tea and biscuits", "tea with lemon", "lisbon flight booked")]
    scores = bm25_scores(tokenize("flight to lisbon and tea"), docs)
    assert scores[2] > scores[0] > 0 and scores[0] == pytest.approx(scores[1], rel=0.3)
    assert bm25_scores(tokenize("zebra"), docs) == [0.0, 0.0, 0.0]


def test_lexical_evidence_breaks_a_dense_tie_and_one_result_per_conversation() -> None:
    hits = [
        hit("a-sum", 0.40, "We talked about travel plans.", "conv-a"),
        hit("b-sum", 0.40, "Travel plans: flights to Oaxaca booked.", "conv-b"),
        hit("a-x000", 0.39, "USER: travel ideas", "conv-a"),
        hit("loose", 0.10, "A memory stored without a conversation."),
    ]
    ranked = hybrid_rank("When is my Oaxaca flight?", hits, top_k=5, min_similarity=-1.0)
    assert [r.hit.key for r in ranked] == ["b-sum", "a-sum", "loose"]  # a-x000 lost to its summary
    assert ranked[0].similarity == pytest.approx(0.40)
    dense_only = hybrid_rank("When is my Oaxaca flight?", hits, top_k=5, min_similarity=-1.0, lexical=False)
    assert [r.hit.key for r in dense_only] == ["a-sum", "b-sum", "loose"]


def test_the_floor_drops_candidates_before_fusion_and_top_k_bounds() -> None:
    hits = [hit(f"k{i}", 0.5 - i * 0.1, f"text {i}", f"c{i}") for i in range(5)]
    assert [r.hit.key for r in hybrid_rank("text", hits, top_k=10, min_similarity=0.25)] == ["k0", "k1", "k2"]
    assert len(hybrid_rank("text", hits, top_k=2, min_similarity=-1.0)) == 2
    assert hybrid_rank("text", hits, top_k=2, min_similarity=0.9) == []


def test_token_cache_is_bounded_and_keyed_by_content() -> None:
    cache = TokenCache(maxsize=2)
    first = cache.counts("k1", "red bike")
    assert cache.counts("k1", "red bike") is first
    assert cache.counts("k1", "blue bike") == Counter(["blue", "bike"])  # same key, new text
    cache.counts("k2", "x y")
    assert cache.counts("k1", "red bike") is not first  # evicted


@pytest.fixture
def store(index_factory) -> SingleTenantStore:
    """WordLlama store on LocalIndex and on S3 Vectors (moto + QueryVectors route)."""
    embedder = LocalEmbedder()
    return SingleTenantStore(index_factory("memory-hybrid", embedder.dimension), embedder)


def test_store_retrieve_is_hybrid_and_returns_one_unit_per_conversation(store) -> None:
    store.store_units(SCOPE, [
        MemoryUnit("c1", "We discussed weekend plans and the weather.", "summary"),
        MemoryUnit("c1-s000", "My sister is getting married in Oaxaca in May.", "statement"),
        MemoryUnit("c1-x000", "USER: My sister is getting married in Oaxaca in May.\nASSISTANT: Lovely!", "excerpt"),
    ], conversation_id="conv-1", opened="2026-03-02T09:00:00.000+00:00~00000001")
    store.store_units(SCOPE, [
        MemoryUnit("c2", "The user likes green tea in the morning.", "summary"),
    ], conversation_id="conv-2", opened="2026-03-09T09:00:00.000+00:00~00000002")
    results = store.retrieve(SCOPE, "Where is my sister's wedding?", top_k=5, min_score=-1.0)
    assert [m.conversation_id for m in results] == ["conv-1", "conv-2"]
    assert results[0].id in ("c1-s000", "c1-x000") and results[0].opened.startswith("2026-03-02")
    assert results[0].score is not None and results[0].score > results[1].score
    assert store.retrieve(SCOPE, "Where is my sister's wedding?", top_k=1, min_score=-1.0)[0].id == results[0].id


def test_the_default_floor_is_the_embedders_calibrated_one(index_factory) -> None:
    embedder = LocalEmbedder()
    store = SingleTenantStore(index_factory("memory-floor", embedder.dimension), embedder)
    assert store.default_min_score == LocalEmbedder.min_score
    strict = SingleTenantStore(index_factory("memory-floor", embedder.dimension), embedder, default_min_score=0.99)
    store.store(SCOPE, "My sister is getting married in Oaxaca in May.")
    assert strict.retrieve(SCOPE, "sister wedding") == []
    assert len(store.retrieve(SCOPE, "sister wedding")) == 1


def test_over_fetch_reaches_past_the_dense_top_k(store, monkeypatch) -> None:
    """A unit ranked below top_k by dense similarity is still a candidate for fusion."""
    units = [MemoryUnit(f"k{i}", f"We chatted about the weather and errands, part {i}.", "summary") for i in range(12)]
    units.append(MemoryUnit("needle", "Errands: the zucchini order for the weather station.", "summary"))
    for u in units:
        store.store_units(SCOPE, [u], conversation_id=u.key)
    seen: list[int] = []
    query = store.index.query
    monkeypatch.setattr(store.index, "query", lambda v, k, f=None: seen.append(k) or query(v, k, f))
    monkeypatch.setattr(hybrid, "LEXICAL_WEIGHT", 5.0)  # let the lexical ranking decide
    (best,) = store.retrieve(SCOPE, "zucchini", top_k=1, min_score=-1.0)
    assert best.id == "needle" and seen == [hybrid.DENSE_CANDIDATES]
