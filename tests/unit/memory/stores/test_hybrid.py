"""Hybrid ranking (dense over-fetch, BM25, score fusion, one result per conversation) as a
function and through both stores: LocalIndex and S3 Vectors under moto with the QueryVectors route."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from memory.embedders.local import LocalEmbedder
from memory.pipeline.units import EXCERPT_TYPE, UNIT_TYPES
from memory.stores import hybrid
from memory.stores.hybrid import (
    TokenCache,
    bm25_scores,
    hybrid_rank,
    near_copy_groups,
    redundancy_divisors,
    tokenize,
)
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


def terms(text: str) -> frozenset[str]:
    return frozenset(tokenize(text))


def test_near_copies_are_equal_term_sets_or_one_extra_term_transitively() -> None:
    groups = near_copy_groups([
        terms("My knees hurt after running on concrete."),
        terms("Honestly, my knees hurt after running on concrete."),  # one extra term
        terms("Anyway, my knees hurt after running on concrete."),  # joins through the first
        terms("My knees hurt after running on the track."),  # a different term, not an extra one
        terms("Honestly, anyway, my knees hurt after running on concrete."),  # two extra terms...
        terms("The skin test showed I react to latex."),
    ])
    assert groups[0] == groups[1] == groups[2] == groups[4]  # ...joined via the one-extra copies
    assert len({groups[0], groups[3], groups[5]}) == 3


def test_near_copies_need_three_terms_and_long_units_must_be_equal() -> None:
    assert len(set(near_copy_groups([terms("red bike"), terms("red bike sold")]))) == 1
    assert len(set(near_copy_groups([terms("bike"), terms("red bike")]))) == 2  # "bike" ~ anything with a bike
    long = [f"word{i}" for i in range(hybrid.NEAR_COPY_MAX_TERMS)]
    assert len(set(near_copy_groups([frozenset(long), frozenset(long[1:])]))) == 1
    assert len(set(near_copy_groups([frozenset(long + ["extra"]), frozenset(long)]))) == 2
    assert len(set(near_copy_groups([frozenset(long + ["extra"]), frozenset(long + ["extra"])]))) == 1


def test_near_copies_include_one_word_swapped_when_many_conversations_hold_both_words() -> None:
    days = ["Monday", "Tuesday", "Wednesday"]
    chatter = [terms(f"My plan for {day} is mostly emails and an early night.") for day in days]
    cities = [terms(f"We rent a small place in {city} close to the river.") for city in ("Denver", "Austin")]
    conversations = ["c0", "c1", "c2", "c3", "c4"]
    sets = [*chatter, *cities, terms("Lunch on Monday, Tuesday and Wednesday ran long.")]
    held_by = hybrid.conversation_counts(sets, [*conversations, "c5"])  # each day: 2 conversations...
    assert len(set(near_copy_groups(sets, held_by)[:3])) == 3  # ...not more than RARE_CONVERSATIONS
    held_by = hybrid.conversation_counts([*sets, sets[-1]], [*conversations, "c5", "c6"])  # each day: 3
    groups = near_copy_groups(sets, held_by)
    assert groups[0] == groups[1] == groups[2]  # one templated remark, the day swapped
    assert groups[3] != groups[4]  # a fact and its new value: each city held by one conversation
    assert len(set(near_copy_groups(sets)[:3])) == 3  # without conversation counts: no swaps
    short = [terms("plan Monday emails"), terms("plan Tuesday emails")]  # fewer than SWAP_MIN_TERMS
    assert len(set(near_copy_groups(short, Counter({"monday": 9, "tuesday": 9})))) == 2


def test_templated_chatter_with_a_common_word_swapped_yields_to_a_fact() -> None:
    """Three conversations say one remark with another day (each day also in two more conversations'
    units): it is one remark said three times, so the fact farther from the question ranks first."""
    days = ["Monday", "Tuesday", "Wednesday"]
    hits = [hit(f"c{i}", 0.30 - i * 0.001, f"My plan for {day} is mostly emails and an early night.", f"conv-{i}")
            for i, day in enumerate(days)]
    hits += [hit(f"l{i}", 0.10, "Lunch on Monday, Tuesday and Wednesday ran long.", f"conv-{i}") for i in range(3)]
    hits.append(hit("fact", 0.22, "Sold the Ford Focus last week and bought a Hyundai Ioniq 5.", "conv-car"))
    query = "What vehicle do I own these days?"
    before = hybrid_rank(query, hits, top_k=2, min_similarity=-1.0, redundancy=False, specificity=False)
    assert [r.hit.key for r in before] == ["c0", "c1"]
    ranked = hybrid_rank(query, hits, top_k=2, min_similarity=-1.0, specificity=False)
    assert [r.hit.key for r in ranked] == ["fact", "c0"]
    assert ranked[1].fused == pytest.approx(1 / (1 + math.log(3)))
    unswapped = hybrid_rank(query, hits, top_k=2, min_similarity=-1.0, specificity=False, swaps=False)
    assert [r.hit.key for r in unswapped] == ["c0", "c1"]


def test_redundancy_divisor_counts_conversations_not_units() -> None:
    said = terms("My knees hurt after running on concrete.")
    once = terms("I repotted the pothos yesterday.")
    divisors = redundancy_divisors([said, said, said, once], ["c1", "c1", "c2", "c3"])
    assert divisors == pytest.approx([1 + math.log(2)] * 3 + [1.0])


def test_a_sentence_said_in_many_conversations_yields_to_one_said_once() -> None:
    """The copies are nearer the question, yet the fact said once ranks first; without the penalty,
    the copies' conversations fill the top 3."""
    filler = "My knees hurt after running on concrete."
    hits = [hit(f"f{i}", 0.30 - i * 0.001, ("Honestly, " if i % 2 else "") + filler, f"c{i}") for i in range(4)]
    hits.append(hit("fact", 0.25, "Big day: I finished my first half marathon in 1:52.", "c9"))
    query = "What was my best race time?"
    plain = hybrid_rank(query, hits, top_k=3, min_similarity=-1.0, redundancy=False, specificity=False)
    assert [r.hit.key for r in plain] == ["f0", "f1", "f2"]
    ranked = hybrid_rank(query, hits, top_k=3, min_similarity=-1.0, specificity=False)
    assert ranked[0].hit.key == "fact" and ranked[0].fused == pytest.approx(0.25 / 0.30)  # 5th by dense, said once
    assert ranked[1].fused == pytest.approx(1 / (1 + math.log(4)))


def test_a_repeated_sentence_leaves_its_conversations_other_units_competing() -> None:
    """The price of the penalty: a fact said word for word in two conversations is demoted too; a
    conversation still ranks by its other units (here conv-a by its excerpt)."""
    hits = [
        hit("a-s000", 0.40, "My usual order is a flat white.", "conv-a"),
        hit("b-s000", 0.40, "My usual order is a flat white.", "conv-b"),
        hit("a-x000", 0.35, "USER: My usual order is a flat white.\nASSISTANT: Noted, oat milk too?", "conv-a"),
        hit("c-sum", 0.30, "We talked about weekend plans.", "conv-c"),
    ]
    ranked = hybrid_rank("What coffee do I order?", hits, top_k=3, min_similarity=-1.0, lexical=False)
    assert [r.hit.key for r in ranked] == ["a-x000", "c-sum", "b-s000"]


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


def test_store_retrieve_demotes_what_many_conversations_said(store) -> None:
    """Both backends: the sentence said in four conversations is the dense favourite, yet the
    conversation with the fact said once comes first."""
    filler = "Anyway, my friend wants to name her new dog after a cartoon character."
    for i in range(4):
        store.store_units(SCOPE, [MemoryUnit(f"f{i}-s000", filler, "statement")], conversation_id=f"conv-f{i}")
    store.store_units(SCOPE, [MemoryUnit("p-s000", "We just brought home a rescue beagle we call Waffles.", "statement")],
                      conversation_id="conv-pet")
    question = "What's the name of the dog we adopted?"
    dense = store.index.query(store.embedder.embed([question], "retrieval")[0], 5)
    assert dense[0].metadata["conversation_id"] != "conv-pet"  # the copies are nearer
    results = store.retrieve(SCOPE, question, top_k=2, min_score=-1.0)
    assert results[0].conversation_id == "conv-pet"


def test_an_excerpt_counts_three_quarters_of_its_similarity() -> None:
    excerpt = hit("a-x000", 0.42, "USER: Work is busy.\nASSISTANT: Share your priorities with your manager.", "conv-a")
    excerpt.metadata["type"] = EXCERPT_TYPE
    near = [hit(f"s{i}", 0.41 - i * 0.01, f"Statement number {i} about my boss.", f"conv-s{i}") for i in range(30)]
    for h in near:
        h.metadata["type"] = "statement"
    ranked = hybrid_rank("Who is my manager?", [excerpt, *near], top_k=30, min_similarity=-1.0, lexical=False,
                         specificity=False)
    # 0.75 x 0.42 = 0.315: below the statements of 0.41 to 0.32, above the one of 0.31
    assert [r.hit.key for r in ranked].index("a-x000") == 10
    by_rank = hybrid_rank("Who is my manager?", [excerpt, *near], top_k=30, min_similarity=-1.0, lexical=False,
                          specificity=False, by_rank=True)
    # the previous fusion: 0.75/61 = 1/81.3, as if ranked about twenty places lower
    assert [r.hit.key for r in by_rank].index("a-x000") == 20
    unweighted = hybrid_rank("Who is my manager?", [excerpt, *near], top_k=3, min_similarity=-1.0, lexical=False,
                             specificity=False, type_weights={})
    assert unweighted[0].hit.key == "a-x000"


def test_the_nearest_by_a_wide_margin_keeps_its_lead_over_a_unit_sharing_a_word() -> None:
    """Scores, not ranks: reciprocal-rank fusion gave the 1st and 2nd nearest nearly the same
    weight, so the filler sharing "married" with the question overtook the fact (bench_recall's
    paraphrased questions); a narrow margin still yields to the shared word."""
    fact = hit("fact", 0.39, "Our anniversary dinner is booked at Marrow downtown.", "conv-a")
    filler = hit("filler", 0.30, "My sister is getting married in Vancouver in May.", "conv-b")
    query = "Where are we celebrating being married?"
    assert [r.hit.key for r in hybrid_rank(query, [fact, filler], top_k=2, min_similarity=-1.0)] == ["fact", "filler"]
    by_rank = hybrid_rank(query, [fact, filler], top_k=2, min_similarity=-1.0, by_rank=True)
    assert [r.hit.key for r in by_rank] == ["filler", "fact"]
    close = hit("close", 0.36, "My sister is getting married in Vancouver in May.", "conv-b")
    assert [r.hit.key for r in hybrid_rank(query, [fact, close], top_k=2, min_similarity=-1.0)] == ["close", "fact"]


def test_score_fusion_is_relative_to_the_best_candidate_so_an_embedders_scale_does_not_matter() -> None:
    contents = ["Flights to Oaxaca booked for May.", "We talked about travel.", "Oaxaca was lovely.", "Tea time."]
    query = "When is my Oaxaca flight?"
    for scale in (1.0, 0.5, 0.1):
        hits = [hit(f"k{i}", scale * (0.5 - 0.03 * i), text, f"c{i}") for i, text in enumerate(contents)]
        ranked = hybrid_rank(query, hits, top_k=4, min_similarity=-1.0, specificity=False)
        assert [r.hit.key for r in ranked] == ["k0", "k2", "k1", "k3"]
        assert ranked[0].fused == pytest.approx(1.0 + hybrid.LEXICAL_WEIGHT)


def test_a_negative_score_is_demoted_not_promoted_by_a_weight_below_one() -> None:
    assert hybrid.demoted(0.8, 0.75) == pytest.approx(0.6)
    assert hybrid.demoted(-0.4, 0.5) == pytest.approx(-0.8)
    near = [hit("x", -0.10, "USER: hi\nASSISTANT: hello", "c1"), hit("s", -0.12, "Some statement.", "c2")]
    near[0].metadata["type"] = EXCERPT_TYPE
    ranked = hybrid_rank("zzz", near, top_k=2, min_similarity=-1.0)
    assert [r.hit.key for r in ranked] == ["s", "x"]


def test_the_weighted_type_is_the_pipelines_excerpt_type() -> None:
    assert set(hybrid.UNIT_TYPE_WEIGHTS) <= set(UNIT_TYPES) and EXCERPT_TYPE in hybrid.UNIT_TYPE_WEIGHTS


class SimilarityEmbedder:
    """2-d embedder giving each known text its cosine similarity to the query "q" (others: 0)."""

    dimension = 2

    def __init__(self, similarities: dict[str, float]) -> None:
        self.similarities = {"q": 1.0, **similarities}

    def embed(self, texts, purpose):
        sims = [self.similarities.get(t, 0.0) for t in texts]
        return [[s, math.sqrt(max(0.0, 1.0 - s * s))] for s in sims]


def test_store_retrieve_weighs_excerpts_on_both_backends(index_factory, monkeypatch) -> None:
    """The dense favourite, an excerpt, ranks 13th among 25 conversations, as in ``hybrid_rank``:
    0.75 x 0.99 is below the 12 statements of 0.98 to 0.76 (the excerpt weight alone)."""
    monkeypatch.setattr(hybrid, "SPECIFICITY_WEIGHT", 0.0)
    statements = {f"Statement {i} about item{i}.": 0.98 - i * 0.02 for i in range(24)}
    excerpt = "USER: the excerpt text\nASSISTANT: right"
    embedder = SimilarityEmbedder({excerpt: 0.99, **statements})
    store = SingleTenantStore(index_factory("memory-weights", embedder.dimension), embedder)
    store.store_units(SCOPE, [MemoryUnit("x-x000", excerpt, EXCERPT_TYPE)], conversation_id="conv-x")
    for i, text in enumerate(statements):
        store.store_units(SCOPE, [MemoryUnit(f"s{i}-s000", text, "statement")], conversation_id=f"conv-s{i}")
    ranked = [m.conversation_id for m in store.retrieve(SCOPE, "q", top_k=25, min_score=-1.0)]
    assert len(ranked) == 25 and ranked.index("conv-x") == 12


def test_a_multi_tenant_store_bounds_one_token_cache_for_all_tenants_never_shared(tmp_path, monkeypatch) -> None:
    """On main each tenant's store had its own 20,000-entry cache (up to 1024 stores). Now the
    tenants share one bound (``token_cache_size``) and key their entries apart: the same key and
    text in another tenant is tokenised anew, and filling the cache from other tenants evicts."""
    from memory.stores.multi_tenant import MultiTenantStore

    tokenised: list[str] = []
    real = hybrid.tokenize
    monkeypatch.setattr(hybrid, "tokenize", lambda text: tokenised.append(text) or real(text))
    store = MultiTenantStore.for_local(root_dir=tmp_path, embedder=LocalEmbedder(), token_cache_size=4)
    texts = ["budget is two million", "trip to paris in may", "likes python code"]
    for tenant in ("acme", "globex", "initech"):
        for i, text in enumerate(texts):
            store.store(Scope("ann", tenant_id=tenant), text, key=f"k{i}", conversation_id=f"c{i}")

    def recall(tenant: str) -> list[str]:
        tokenised.clear()
        store.retrieve(Scope("ann", tenant_id=tenant), "budget paris python", top_k=3, min_score=-1.0)
        return sorted(t for t in tokenised if t in texts)  # not the query

    assert recall("acme") == sorted(texts)
    assert recall("acme") == []  # cached
    assert recall("globex") == sorted(texts)  # same keys and texts, another tenant: not shared
    recall("initech")
    assert recall("acme") == sorted(texts)  # evicted: 4 entries for all tenants together


@pytest.mark.parametrize("lexical", [[0.0, 2.0], []])
def test_score_fusion_does_not_jump_as_the_best_similarity_crosses_zero(lexical: list[float]) -> None:
    """Below 0 the similarities were kept raw; just above, divided by a tiny best, the others
    dwarfed the lexical term: the fused scores (and the order: the lexical match first below 0,
    last above) jumped."""
    near = {eps: hybrid.score_fusion([eps, -0.1], lexical) for eps in (-1e-6, 0.0, 1e-6)}
    for scores in near.values():
        assert scores == pytest.approx(near[0.0], abs=1e-4)
    assert len({tuple(sorted(range(2), key=lambda i: -s[i])) for s in near.values()}) == 1


def test_score_fusion_divides_positive_similarities_by_the_best_whatever_the_worst() -> None:
    assert hybrid.score_fusion([0.6, 0.3, 0.05], [0.0, 1.0, 0.0]) == pytest.approx(
        [1.0, 0.5 + hybrid.LEXICAL_WEIGHT, 0.05 / 0.6]
    )


def test_specificity_is_the_share_of_a_units_own_words_at_most_two_conversations_hold() -> None:
    sets = [
        terms("lunch with friends ran long on Monday"),  # conv-a
        terms("lunch with friends ran long on Tuesday"),  # conv-b
        terms("lunch with friends ran long, then the Ford Focus stalled"),  # conv-c
        terms("sold the Ford Focus and bought a Hyundai"),  # conv-d: ford/focus in two conversations
        terms("bought a Hyundai"),  # conv-d again: a conversation counts once
        terms("lunch"),  # conv-e: only the query's word
    ]
    held_by = hybrid.conversation_counts(sets, ["a", "b", "c", "d", "d", "e"])
    shares = hybrid.specificity_scores(sets, frozenset(tokenize("vehicle lunch")), held_by)
    # own words (not the query's "lunch"): friend/ran/long held by three conversations, not rare
    assert shares[0] == pytest.approx(1 / 4)  # monday
    assert shares[2] == pytest.approx(3 / 6)  # ford, focus (two conversations), stall; not friend, ran, long
    assert shares[3] == pytest.approx(1.0) and shares[4] == pytest.approx(1.0)
    assert shares[5] == 0.0  # no word of its own


def test_a_fact_few_conversations_said_outranks_chatter_nearer_the_question() -> None:
    """The update of a fact ("Sold the Ford Focus ... bought a Hyundai Ioniq 5") shares no word with
    "What vehicle do I own these days?" and is farther than a chatter sentence four conversations
    nearly repeat (not word for word: the redundancy penalty leaves it); before, the chatter filled
    the top 3."""
    days = ["Monday", "Tuesday", "Wednesday", "Thursday"]
    chatter = [hit(f"c{i}", 0.30 - i * 0.001, f"Lunch with friends ran long on {day} and we talked about the weather.",
                   f"conv-{day}") for i, day in enumerate(days)]
    fact = hit("fact", 0.25, "Sold the Ford Focus last week and bought a Hyundai Ioniq 5.", "conv-car")
    query = "What vehicle do I own these days?"
    before = hybrid_rank(query, [*chatter, fact], top_k=3, min_similarity=-1.0, specificity=False)
    assert [r.hit.key for r in before] == ["c0", "c1", "c2"]
    ranked = hybrid_rank(query, [*chatter, fact], top_k=3, min_similarity=-1.0)
    assert ranked[0].hit.key == "fact"
    assert ranked[0].fused == pytest.approx(0.25 / 0.30 + hybrid.SPECIFICITY_WEIGHT)  # all its words are its own
    # chatter: of lunch/friend/ran/long/talk/weather/<day>, only the day is its own
    assert ranked[1].fused == pytest.approx(1.0 + hybrid.SPECIFICITY_WEIGHT / 7)


def test_store_retrieve_weighs_specificity_on_both_backends(index_factory) -> None:
    """Both backends rank from the candidates' text alone: the fact farther than four chatter
    sentences comes first."""
    days = ["Monday", "Tuesday", "Wednesday", "Thursday"]
    chatter = {f"Lunch with friends ran long on {day} and we talked about the weather.": 0.60 - i * 0.01
               for i, day in enumerate(days)}
    fact = "Sold the Ford Focus last week and bought a Hyundai Ioniq 5."
    embedder = SimilarityEmbedder({fact: 0.50, **chatter})
    store = SingleTenantStore(index_factory("memory-specificity", embedder.dimension), embedder)
    for i, text in enumerate(chatter):
        store.store_units(SCOPE, [MemoryUnit(f"c{i}-s000", text, "statement")], conversation_id=f"conv-c{i}")
    store.store_units(SCOPE, [MemoryUnit("car-s000", fact, "statement")], conversation_id="conv-car")
    ranked = [m.conversation_id for m in store.retrieve(SCOPE, "q", top_k=3, min_score=-1.0)]
    assert ranked == ["conv-car", "conv-c0", "conv-c1"]
