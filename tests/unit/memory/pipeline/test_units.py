"""Memory units of a conversation (summary, excerpts, statements, facts) on both backends: what they keep,
S3 Vectors' limits, idempotent replays and ``forget`` reaching every unit type."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import pytest
from botocore.stub import ANY, Stubber

from memory.aws import make_client
from memory.embedders.local import LocalEmbedder
from memory.index import limits
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.summarizer import DEFAULT_MAX_CHARS, MAX_FACT_CHARS, MAX_FACTS, extractive_summary
from memory.pipeline.units import (
    EXCERPT_MAX_CHARS,
    MAX_EXCERPTS,
    UNIT_TYPES,
    conversation_fact_key,
    conversation_units,
    excerpt_key,
    excerpt_windows,
    statement_key,
    store_conversation,
    summary_key_of,
    unit_keys,
)
from memory.stores.single_tenant import SingleTenantStore
from memory.types import Scope
from tests.unit.memory.conftest import BUCKET

SCOPE = Scope("alice", agent_name="orchestrator")
FILLER = "We talked about the weather and the traffic on the way to the office for a while."
#: Facts as an abstractive summarizer extracts them (``Summarizer.digest``).
FACTS = ("The user's budget is 2M.", "The user moved to Porto in March 2026.")


def turns(*texts: str) -> list[dict[str, str]]:
    """Alternating user/assistant turns."""
    return [{"role": "user" if i % 2 == 0 else "assistant", "text": t} for i, t in enumerate(texts)]


def entry(transcript: list[dict[str, str]], conversation: str = "conv-1") -> OutboxEntry:
    return OutboxEntry(tenant_id=None, user_id="alice", agent_name="orchestrator", conversation_id=conversation,
                       transcript=transcript, opened="2026-03-02T09:00:00.000+00:00~0000abcd")


@pytest.fixture
def store(index_factory) -> SingleTenantStore:
    embedder = LocalEmbedder()
    return SingleTenantStore(index_factory("memory-units", embedder.dimension), embedder)


def test_a_fact_past_the_summary_cap_and_one_ending_in_a_question_are_kept() -> None:
    transcript = turns(*[x for i in range(30) for x in (f"Part {i}: {FILLER}", "I see.")],
                       "By the way, my sister is getting married in Oaxaca in May, any tips?", "Congratulations!")
    summary = extractive_summary(transcript)
    assert len(summary) <= DEFAULT_MAX_CHARS and "Oaxaca" not in summary  # the cap cut it
    units = conversation_units("sum-k", transcript, summary)
    holding = [u for u in units if "married in Oaxaca" in u.content]
    assert {u.memory_type for u in holding} == {"excerpt", "statement"}
    statement = next(u for u in holding if u.memory_type == "statement")
    assert statement.content == "By the way, my sister is getting married in Oaxaca in May, any tips?"
    assert all(u.content != "I see." for u in units if u.memory_type == "statement")  # only the user's


def test_excerpt_windows_cover_every_turn_with_both_speakers_and_overlap() -> None:
    transcript = turns("My budget is 2M.", "Noted.", "The deadline is May.", "Got it.", "Bye.")
    windows = excerpt_windows(transcript)
    assert windows == [
        "USER: My budget is 2M.\nASSISTANT: Noted.",
        "ASSISTANT: Noted.\nUSER: The deadline is May.",
        "USER: The deadline is May.\nASSISTANT: Got it.",
        "ASSISTANT: Got it.\nUSER: Bye.",
    ]


def test_a_turn_longer_than_a_window_is_split_without_losing_text() -> None:
    long_turn = " ".join(f"Sentence number {i} holds fact {i}." for i in range(200))
    windows = excerpt_windows(turns(long_turn))
    assert len(windows) > 1 and all(len(w) <= EXCERPT_MAX_CHARS for w in windows)
    for i in range(200):
        assert any(f"fact {i}." in w for w in windows)


def test_keys_derive_from_the_summary_key_and_types_are_known() -> None:
    units = conversation_units("sum-abc", turns("I own a red bike.", "Nice.", "I live in Porto.", "Ok."),
                               "I own a red bike. I live in Porto.", ("The user owns a red bike.", "ok"))
    assert [u.key for u in units] == ["sum-abc", "sum-abc-x000", "sum-abc-x001", "sum-abc-x002",
                                      "sum-abc-s000", "sum-abc-s001", "sum-abc-f000"]  # "ok" holds no fact
    assert {u.memory_type for u in units} == set(UNIT_TYPES)
    assert set(u.key for u in units) <= set(unit_keys("sum-abc"))


def test_unit_keys_are_every_key_the_key_functions_can_make() -> None:
    expected = ["sum-abc", *(excerpt_key("sum-abc", n) for n in range(MAX_EXCERPTS)),
                *(statement_key("sum-abc", n) for n in range(MAX_EXCERPTS)),
                *(conversation_fact_key("sum-abc", n) for n in range(MAX_FACTS))]
    assert unit_keys("sum-abc") == expected and len(set(expected)) == len(expected)


def test_a_statement_equal_to_the_summary_is_not_stored_twice() -> None:
    units = conversation_units("sum-k", turns("My dog is Rex.", "Nice."), "My dog is Rex.")
    assert [u.memory_type for u in units] == ["summary", "excerpt"]


def test_the_largest_conversation_fits_s3_vectors_limits() -> None:
    """Multi-byte text, huge turns, more windows than the cap: every unit's metadata validates, and
    one conversation is at most one put batch."""
    huge = ("Ünïcödé fact ✓ " * 400 + ". ") * 3
    transcript = turns(*[huge if i % 2 == 0 else "ok" for i in range(2 * MAX_EXCERPTS)])
    longest_facts = [f"The user's fact {n} is " + "ü" * MAX_FACT_CHARS for n in range(MAX_FACTS)]
    units = conversation_units("sum-" + "f" * 64, transcript, extractive_summary(transcript), longest_facts)
    assert sum(u.memory_type == "fact" for u in units) == MAX_FACTS
    assert len(units) <= len(unit_keys("k")) == 1 + 2 * MAX_EXCERPTS + MAX_FACTS <= limits.MAX_PUT_BATCH
    for unit in units:
        metadata = {"user_id": "u" * 64, "agent_name": "a" * 64, "type": unit.memory_type,
                    "stored_at_epoch": 1_800_000_000, "opened": "2026-03-02T09:00:00.000+00:00~0000abcd",
                    "content": unit.content, "conversation_id": "c" * 100}
        limits.validate_metadata(metadata)
        assert len(json.dumps(metadata, ensure_ascii=False).encode()) < limits.MAX_METADATA_BYTES
        limits.validate_key(unit.key)


def test_a_long_turn_without_sentence_breaks_is_stored_whole(store) -> None:
    """Japanese has no ". " between sentences, so a whole turn is one "sentence": under the app's
    default prompt cap (16,000 characters) it is over 40 KB of UTF-8, more than one vector's
    metadata may hold. Every unit still fits, and the statements keep all of its text."""
    sentence = "2026年Q4の東京本社移転の予算は合計二百万円で、担当は鈴木さんのチームです、"
    long_turn = sentence * (15_900 // len(sentence))
    assert len(long_turn) <= 16_000 < limits.MAX_METADATA_BYTES < len(long_turn.encode())
    e = entry(turns(long_turn, "Understood.", "My budget is 2M.", "Noted."))
    stored = store_conversation(store, e, extractive_summary(e.transcript))
    statements = [m.content for m in sorted(stored, key=lambda m: m.id) if m.memory_type == "statement"]
    assert "".join(statements) == long_turn + "." + "My budget is 2M."
    assert all(len(m.content) <= EXCERPT_MAX_CHARS for m in stored if m.memory_type != "summary")


def _stored(store: SingleTenantStore) -> dict[str, str]:
    return {m.id: m.memory_type for m in store.list(SCOPE)}


def test_replays_are_idempotent_and_drop_units_a_shorter_version_no_longer_has(store) -> None:
    long = entry(turns("My budget is 2M.", "Noted.", "I like tea.", "Ok.", "I moved to Porto.", "Nice."))
    store_conversation(store, long, extractive_summary(long.transcript), FACTS)
    first = _stored(store)
    assert set(first.values()) == set(UNIT_TYPES) and len(first) == 1 + 5 + 3 + 2
    assert {k: t for k, t in first.items() if t == "fact"} == {f"{long.key}-f000": "fact", f"{long.key}-f001": "fact"}
    store_conversation(store, long, extractive_summary(long.transcript), FACTS)  # a replay: same keys
    assert _stored(store) == first
    store_conversation(store, long, extractive_summary(long.transcript), FACTS[:1])  # one fact fewer
    assert set(_stored(store)) == set(first) - {f"{long.key}-f001"}
    short = entry(long.transcript[:2])  # e.g. re-summarized with other settings: fewer units
    store_conversation(store, short, extractive_summary(short.transcript))
    assert _stored(store) == {long.key: "summary", f"{long.key}-x000": "excerpt"}
    assert {m.opened for m in store.list(SCOPE)} == {long.opened}


def test_forget_a_conversation_or_a_user_reaches_every_unit_type(store) -> None:
    one = entry(turns("My budget is 2M.", "Noted.", "I like tea.", "Ok."), conversation="conv-1")
    two = entry(turns("I own a cat called Miso.", "Cute."), conversation="conv-2")
    store_conversation(store, one, extractive_summary(one.transcript), FACTS)
    store_conversation(store, two, extractive_summary(two.transcript), ("The user has a cat called Miso.",))
    by_conversation = {}
    for memory in store.list(SCOPE):
        by_conversation.setdefault(memory.conversation_id, set()).add(memory.memory_type)
    assert by_conversation == {"conv-1": set(UNIT_TYPES), "conv-2": {"summary", "excerpt", "fact"}}
    count_one = sum(1 for m in store.list(SCOPE) if m.conversation_id == "conv-1")
    assert store.forget(SCOPE, conversation_id="conv-1") == count_one
    assert {m.conversation_id for m in store.list(SCOPE)} == {"conv-2"}
    assert store.forget(Scope("alice")) == 3 and store.list(SCOPE) == []


def test_units_are_dated_by_the_conversation_so_a_late_store_expires_with_it(index_factory) -> None:
    """A summary stored days after its conversation (a dead letter retried, a replay on a new
    microVM) keeps the conversation's date: retention counts from it, and the model sees it."""
    embedder = LocalEmbedder()
    now = [datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc).timestamp()]
    store = SingleTenantStore(index_factory("memory-dated", embedder.dimension), embedder,
                              ttl_seconds=7 * 86400, clock=lambda: now[0])
    old = dataclasses.replace(entry(turns("My budget is 2M.", "Noted."), "conv-old"),
                              created_at="2026-03-02T09:30:00+00:00")  # ended 8 days ago, stored now
    recent = dataclasses.replace(entry(turns("My budget is 3M.", "Noted."), "conv-new"),
                                 created_at="2026-03-09T18:00:00+00:00")
    skewed = dataclasses.replace(entry(turns("My budget is 4M.", "Noted."), "conv-skew"),
                                 created_at="2026-03-11T00:00:00+00:00")  # another host's clock ahead
    for e in (old, recent, skewed):
        store_conversation(store, e, extractive_summary(e.transcript))
    dates = {m.conversation_id: {m2.stored_at for m2 in store.list(SCOPE) if m2.conversation_id == m.conversation_id}
             for m in store.list(SCOPE)}
    assert dates == {"conv-old": {datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)},
                     "conv-new": {datetime(2026, 3, 9, 18, 0, tzinfo=timezone.utc)},
                     "conv-skew": {datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)}}  # never in the future
    assert {m.conversation_id for m in store.retrieve(SCOPE, "budget", min_score=0.0, top_k=10)} == {
        "conv-new", "conv-skew"}
    old_units = sum(1 for m in store.list(SCOPE) if m.conversation_id == "conv-old")
    assert old_units and store.sweep_expired() == old_units


def test_s3_vectors_requests_of_one_conversation_are_valid_for_the_service_model() -> None:
    """One PutVectors with every unit, then GetVectors of the keys the units do not use (none
    exists: no DeleteVectors), checked by botocore's Stubber against the s3vectors service model."""
    client = make_client("s3vectors", region="us-east-1")
    store = SingleTenantStore.for_s3vectors(client=client, bucket="b-units", index_name="memory-units",
                                            embedder=LocalEmbedder())
    e = entry(turns("My budget is 2M.", "Noted.", "I like tea.", "Ok."))
    units = conversation_units(e.key, e.transcript, extractive_summary(e.transcript), FACTS)
    target = {"vectorBucketName": "b-units", "indexName": "memory-units"}
    sent: list[dict] = []
    client.meta.events.register("before-parameter-build.s3vectors.PutVectors", lambda params, **_: sent.append(params))
    with Stubber(client) as stub:
        stub.add_response("get_index", {"index": {
            **target, "indexArn": "arn:aws:s3vectors:x", "creationTime": 0, "dataType": "float32",
            "dimension": 256, "distanceMetric": "cosine",
            "metadataConfiguration": {"nonFilterableMetadataKeys": ["content", "conversation_id"]}}}, target)
        stub.add_response("put_vectors", {}, {**target, "vectors": ANY})
        stale = [k for k in unit_keys(e.key) if k not in {u.key for u in units}]
        assert len(stale) <= limits.MAX_DELETE_BATCH
        for start in range(0, len(stale), limits.MAX_GET_BATCH):  # which of them exist: none
            keys = stale[start : start + limits.MAX_GET_BATCH]
            stub.add_response("get_vectors", {"vectors": []},
                              {**target, "keys": keys, "returnData": True, "returnMetadata": True})
        store_conversation(store, e, extractive_summary(e.transcript), FACTS)
        stub.assert_no_pending_responses()
    (put,) = sent
    assert [v["key"] for v in put["vectors"]] == [u.key for u in units]
    assert {v["metadata"]["type"] for v in put["vectors"]} == set(UNIT_TYPES)
    assert all(v["metadata"]["opened"] == e.opened and v["metadata"]["conversation_id"] == "conv-1"
               for v in put["vectors"])


def test_storing_a_conversation_deletes_only_units_that_exist(s3vectors_client, s3vectors_double) -> None:
    """S3 Vectors allows at most 2,500 vectors inserted and deleted per second per index: deleting
    every key a conversation's units may have (451) on every store spends ~440 of them on keys
    that never existed, so a tenant would be throttled at about 5 stored conversations a second."""
    store = SingleTenantStore.for_s3vectors(client=s3vectors_client, bucket=BUCKET, index_name="memory-quota",
                                            embedder=LocalEmbedder())
    e = entry(turns("My budget is 2M.", "Noted.", "I like tea.", "Ok."))
    first = store_conversation(store, e, extractive_summary(e.transcript), FACTS)
    assert sum(s3vectors_double.count("PutVectors")) == len(first) and s3vectors_double.count("DeleteVectors") == []
    store_conversation(store, e, extractive_summary(e.transcript), FACTS[:1])  # a replay with one fact fewer
    assert s3vectors_double.count("DeleteVectors") == [1]
    assert {m.id for m in store.list(SCOPE)} == {m.id for m in first} - {f"{e.key}-f001"}


def test_every_unit_key_maps_back_to_its_summary_key() -> None:
    key = "sum-" + "ab" * 32
    assert {summary_key_of(k) for k in unit_keys(key)} == {key}
    assert summary_key_of("mem-0123") == "mem-0123"
