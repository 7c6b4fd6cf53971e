"""SingleTenantStore and MultiTenantStore on both backends: round trips, the agent rule,
thresholds, forgetting, tenant validation and isolation (S3 Vectors via moto + TVM)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from memory.aws import make_client
from memory.embedders.local import LocalEmbedder
from memory.errors import ConfigurationError, InvalidTenantId, NotFound, ValidationError
from memory.keys import summary_key
from memory.index.local import LocalIndex
from memory.types import Scope
from memory.stores.protocol import MemoryBackend
from memory.index.s3vectors import create_index_params
from memory.stores.multi_tenant import MultiTenantStore
from memory.stores.single_tenant import SingleTenantStore
from memory.tenants import index_name_for
from memory.stores.tvm import TokenVendingMachine

VOCAB = ["budget", "spend", "paris", "travel", "python", "code", "cat", "dog"]


class KeywordEmbedder:
    """Deterministic test embedder: one axis per known word, plus a small shared axis."""

    dimension = len(VOCAB) + 1

    def __init__(self):
        self.calls: list[str] = []

    def embed(self, texts, purpose):
        self.calls.append(purpose)
        out = []
        for text in texts:
            vec = np.zeros(self.dimension)
            for word in re.findall(r"[a-z]+", text.lower()):
                if word in VOCAB:
                    vec[VOCAB.index(word)] += 1.0
            vec[-1] = 0.1
            out.append((vec / np.linalg.norm(vec)).tolist())
        return out


@pytest.fixture
def store(index_factory):
    embedder = KeywordEmbedder()
    return SingleTenantStore(index_factory("memory-store-test", embedder.dimension), embedder)


U1, U2 = "user-1", "user-2"


def test_round_trip_metadata_and_scores(store):
    before = int(time.time())
    stored = store.store(Scope(U1, agent_name="planner"), "Budget spend is 2M", conversation_id="c1")
    assert isinstance(store, MemoryBackend)
    assert stored.id.startswith("mem-") and stored.agent_name == "planner"
    (record,) = store.index.get([stored.id])
    assert record.metadata == {
        "user_id": U1, "agent_name": "planner", "type": "summary", "content": "Budget spend is 2M",
        "conversation_id": "c1", "stored_at_epoch": record.metadata["stored_at_epoch"],
    }
    assert before <= record.metadata["stored_at_epoch"] <= int(time.time())
    (hit,) = store.retrieve(Scope(U1, agent_name="planner"), "what is the budget spend?")
    assert hit.id == stored.id and hit.content == "Budget spend is 2M"
    assert hit.score == pytest.approx(1.0, abs=1e-5) and hit.conversation_id == "c1"
    assert store.embedder.calls == ["index", "retrieval"]


def test_no_agent_name_is_not_stored_as_metadata(store):
    m = store.store(Scope(U1), "travel to paris", memory_type="fact")
    (record,) = store.index.get([m.id])
    assert "agent_name" not in record.metadata and "conversation_id" not in record.metadata
    assert record.metadata["type"] == "fact"


def test_agent_rule(store):
    store.store(Scope(U1, agent_name="planner"), "budget plan")
    store.store(Scope(U1, agent_name="coder"), "budget code")
    store.store(Scope(U1), "budget shared")
    store.store(Scope(U2, agent_name="planner"), "budget other user")

    def contents(scope):
        return sorted(m.content for m in store.retrieve(scope, "budget", top_k=10))

    assert contents(Scope(U1, agent_name="planner")) == ["budget plan", "budget shared"]
    assert contents(Scope(U1, agent_name="coder")) == ["budget code", "budget shared"]
    assert contents(Scope(U1, agent_name="newcomer")) == ["budget shared"]
    assert contents(Scope(U1)) == ["budget code", "budget plan", "budget shared"]
    assert contents(Scope(U2)) == ["budget other user"]
    assert contents(Scope("user-3")) == []
    assert sorted(m.content for m in store.list(Scope(U1, agent_name="coder"))) == ["budget code", "budget shared"]


def test_min_score_really_filters_and_results_are_best_first(store):
    store.store(Scope(U1), "budget spend")
    store.store(Scope(U1), "budget travel paris")
    store.store(Scope(U1), "cat dog")
    everything = store.retrieve(Scope(U1), "budget spend", top_k=10, min_score=-1.0)
    scores = [m.score for m in everything]
    assert len(everything) == 3 and scores == sorted(scores, reverse=True)
    assert everything[0].content == "budget spend"
    strict = store.retrieve(Scope(U1), "budget spend", top_k=10, min_score=0.3)
    assert [m.content for m in strict] == ["budget spend", "budget travel paris"]
    assert all(m.score >= 0.3 for m in strict) and strict[1].score == pytest.approx(0.41, abs=0.01)
    assert store.retrieve(Scope(U1), "budget spend", top_k=1, min_score=-1.0)[0].content == "budget spend"
    assert store.retrieve(Scope(U1), "budget spend", top_k=10, min_score=0.999)[0].content == "budget spend"


def test_default_min_score_applies(index_factory):
    embedder = KeywordEmbedder()
    store = SingleTenantStore(index_factory("memory-threshold", embedder.dimension), embedder, default_min_score=0.5)
    store.store(Scope(U1), "cat dog")
    assert store.retrieve(Scope(U1), "budget") == []
    assert len(store.retrieve(Scope(U1), "budget", min_score=0.0)) == 1


def test_same_key_is_idempotent(store):
    key = summary_key(None, U1, "planner", "conv-1")
    store.store(Scope(U1, agent_name="planner"), "budget first", key=key, conversation_id="conv-1")
    store.store(Scope(U1, agent_name="planner"), "budget second", key=key, conversation_id="conv-1")
    assert [m.content for m in store.list(Scope(U1))] == ["budget second"]


def test_forget_by_conversation_agent_and_user(store):
    store.store(Scope(U1, agent_name="planner"), "budget a", conversation_id="c1")
    store.store(Scope(U1, agent_name="planner"), "budget b", conversation_id="c2")
    store.store(Scope(U1, agent_name="coder"), "code c", conversation_id="c1")
    store.store(Scope(U1), "shared d", conversation_id="c1")
    store.store(Scope(U2), "other e", conversation_id="c1")
    assert store.forget(Scope(U1, agent_name="planner"), conversation_id="c1") == 1
    assert store.forget(Scope(U1, agent_name="planner")) == 1  # own memories only, not shared
    assert sorted(m.content for m in store.list(Scope(U1))) == ["code c", "shared d"]
    assert store.forget(Scope(U1), conversation_id="c1") == 2
    assert store.list(Scope(U1)) == [] and len(store.list(Scope(U2))) == 1
    assert store.forget(Scope(U1)) == 0


def test_forget_tenant_empties_the_index_and_store_recovers(store):
    store.store(Scope(U1), "budget")
    store.store(Scope(U2), "travel")
    assert store.forget_tenant() == 2
    assert store.index.query([1.0] * store.index.dimension, top_k=1) == []
    assert store.list(Scope(U1)) == []
    assert store.list(Scope(U2)) == []
    store.store(Scope(U1), "budget again")
    assert len(store.retrieve(Scope(U1), "budget")) == 1


def test_forget_tenant_on_s3_vectors_lists_keys_only():
    """Emptying an index needs its keys, not their metadata: ListVectors is asked for keys only
    (up to 1,000 a page, where metadata of up to 40 KB a vector ends a page at 1 MB read)."""
    client = make_client("s3vectors", region="us-east-1", max_attempts=1)
    embedder = KeywordEmbedder()
    target = {"vectorBucketName": "mem-bucket", "indexName": "memory-acme"}
    with Stubber(client) as stubber:
        store = SingleTenantStore.for_s3vectors(client=client, bucket="mem-bucket", index_name="memory-acme", embedder=embedder)
        description = {**target, "indexArn": "arn:aws:s3vectors:us-east-1:123456789012:bucket/mem-bucket/index/memory-acme",
                       "creationTime": "2025-01-01T00:00:00Z", "dataType": "float32", "dimension": embedder.dimension,
                       "distanceMetric": "cosine", "metadataConfiguration": {"nonFilterableMetadataKeys": ["content", "conversation_id"]}}  # fmt: skip
        stubber.add_response("get_index", {"index": description}, target)
        listing = {**target, "maxResults": 1000, "returnMetadata": False, "returnData": False}
        stubber.add_response("list_vectors", {"vectors": [{"key": "a"}, {"key": "b"}], "nextToken": "p2"}, listing)
        stubber.add_response("list_vectors", {"vectors": [{"key": "c"}]}, {**listing, "nextToken": "p2"})
        stubber.add_response("delete_vectors", {}, {**target, "keys": ["a", "b", "c"]})
        assert store.forget_tenant() == 3
        stubber.assert_no_pending_responses()


def test_validation(store, tmp_path):
    with pytest.raises(ValidationError):
        store.store(Scope(U1), "   ")
    with pytest.raises(ValidationError):
        store.store(Scope(""), "budget")
    with pytest.raises(ValidationError):
        store.retrieve(Scope(U1, tenant_id="acme"), "budget")  # store has no tenant
    with pytest.raises(ValidationError):
        store.retrieve(Scope(U1), "budget", top_k=101)
    assert store.retrieve(Scope(U1), "") == []
    tenant_store = SingleTenantStore(LocalIndex(tmp_path, "memory-acme", 9), KeywordEmbedder(), tenant_id="acme")
    tenant_store.store(Scope(U1, tenant_id="acme"), "budget")
    with pytest.raises(ValidationError):
        tenant_store.list(Scope(U1, tenant_id="globex"))
    with pytest.raises(ValidationError):
        tenant_store.forget_tenant("globex")


def test_dimension_mismatch_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="expects 1024-d"):
        SingleTenantStore(LocalIndex(tmp_path, "memory-x", 1024), LocalEmbedder())


def test_wordllama_round_trip(tmp_path):
    store = SingleTenantStore.for_local(root_dir=tmp_path, embedder=LocalEmbedder())
    store.store(Scope(U1), "The quarterly marketing budget is two million dollars")
    store.store(Scope(U1), "My cat is called Felix and likes tuna")
    best = store.retrieve(Scope(U1), "marketing budget", top_k=2, min_score=-1)
    assert best[0].content.startswith("The quarterly marketing budget")


def test_the_default_local_index_is_no_tenants_index(tmp_path):
    """``for_local``'s default index was ``memory-default``: tenant ``default``'s index name, so a
    multi-tenant store in the same directory read and wrote the single-tenant store's memories.
    Every tenant's index is ``memory-`` + at least one character, so ``memory`` is none of them."""
    single = SingleTenantStore.for_local(root_dir=tmp_path, embedder=KeywordEmbedder())
    multi = MultiTenantStore.for_local(root_dir=tmp_path, embedder=KeywordEmbedder())
    single.store(Scope(U1), "budget of the single-tenant deployment")
    multi.store(Scope(U1, tenant_id="default"), "budget of tenant default")
    assert [m.content for m in single.retrieve(Scope(U1), "budget", min_score=-1)] == [
        "budget of the single-tenant deployment"
    ]
    assert [m.content for m in multi.retrieve(Scope(U1, tenant_id="default"), "budget", min_score=-1)] == [
        "budget of tenant default"
    ]
    from memory.stores.single_tenant import DEFAULT_LOCAL_INDEX
    from memory.tenants import INDEX_PREFIX

    assert single.index.name == DEFAULT_LOCAL_INDEX and not DEFAULT_LOCAL_INDEX.startswith(INDEX_PREFIX)


def test_an_upgrade_keeps_reading_the_memories_of_the_old_default_index(tmp_path, caplog):
    """The old default's file (``memory-default.sqlite3``) may hold a single-tenant store's memories
    or tenant ``default``'s (the records do not say which), so it is neither renamed nor ignored:
    the default store keeps using it while the new file does not exist, and warns."""
    from memory.stores.single_tenant import DEFAULT_LOCAL_INDEX, LEGACY_LOCAL_INDEX

    old = SingleTenantStore.for_local(root_dir=tmp_path, embedder=KeywordEmbedder(), index_name=LEGACY_LOCAL_INDEX)
    old.store(Scope(U1), "budget written before the upgrade")
    with caplog.at_level("WARNING", logger="memory.stores.single_tenant"):
        upgraded = SingleTenantStore.for_local(root_dir=tmp_path, embedder=KeywordEmbedder())
    assert [m.content for m in upgraded.list(Scope(U1))] == ["budget written before the upgrade"]
    assert "memory-default" in caplog.text and "tenant 'default'" in caplog.text
    fresh = SingleTenantStore.for_local(root_dir=tmp_path / "fresh", embedder=KeywordEmbedder())
    assert fresh.index.name == DEFAULT_LOCAL_INDEX


# -- multi-tenant --------------------------------------------------------------------------


@pytest.fixture
def local_multi(tmp_path):
    return MultiTenantStore.for_local(root_dir=tmp_path / "idx", embedder=KeywordEmbedder())


def test_multi_tenant_isolation_local(local_multi, tmp_path):
    local_multi.store(Scope(U1, tenant_id="acme"), "budget acme")
    local_multi.store(Scope(U1, tenant_id="globex"), "budget globex")
    assert [m.content for m in local_multi.retrieve(Scope(U1, tenant_id="acme"), "budget")] == ["budget acme"]
    assert [m.tenant_id for m in local_multi.list(Scope(U1, tenant_id="globex"))] == ["globex"]
    assert sorted(p.name for p in (tmp_path / "idx").iterdir() if p.suffix == ".sqlite3") == [
        "memory-acme.sqlite3", "memory-globex.sqlite3"]
    assert local_multi.store_for("acme") is local_multi.store_for("acme")
    assert local_multi.forget_tenant("acme") == 1
    assert local_multi.list(Scope(U1, tenant_id="acme")) == []
    assert len(local_multi.list(Scope(U1, tenant_id="globex"))) == 1


@pytest.mark.parametrize("tenant", ["Acme", "acme--x", "acme_x", "../acme", "", "a" * 57, "acme "])
def test_multi_tenant_rejects_invalid_ids_before_touching_storage(local_multi, tmp_path, tenant):
    for call in (
        lambda: local_multi.store(Scope(U1, tenant_id=tenant), "budget"),
        lambda: local_multi.retrieve(Scope(U1, tenant_id=tenant), "budget"),
        lambda: local_multi.forget_tenant(tenant),
    ):
        with pytest.raises(InvalidTenantId):
            call()
    assert not (tmp_path / "idx").exists()


def test_multi_tenant_requires_a_tenant(local_multi):
    with pytest.raises(ValidationError):
        local_multi.retrieve(Scope(U1), "budget")
    with pytest.raises(ValidationError):
        local_multi.forget_tenant(None)


def test_s3vectors_multi_tenant_requires_role_arn():
    for role in (None, ""):
        with pytest.raises(ConfigurationError, match="role ARN"):
            MultiTenantStore.for_s3vectors(
                bucket="b", role_arn=role, region="us-east-1", embedder=KeywordEmbedder()
            )


def test_s3vectors_multi_tenant_refuses_a_bucket_name_s3_vectors_refuses_when_built():
    """Tenant indexes are opened at each tenant's first use: a mistyped AGENT_VECTOR_BUCKET is
    refused when the store is built (the app does not start), not at every tenant's first turn."""
    with pytest.raises(ValidationError, match="bucket name"):
        MultiTenantStore.for_s3vectors(
            bucket="Memory_Bucket", role_arn="arn:aws:iam::123456789012:role/t", region="us-east-1",
            embedder=KeywordEmbedder(),
        )


def test_s3vectors_multi_tenant_round_trip_under_moto(s3vectors_double):
    with mock_aws():
        operator = make_client("s3vectors", region="us-east-1")
        operator.create_vector_bucket(vectorBucketName="mem-bucket")
        for tenant in ("acme", "globex"):  # onboarding is the operator's job, not the TVM role's
            operator.create_index(**create_index_params("mem-bucket", index_name_for(tenant), KeywordEmbedder.dimension))
        sts = make_client("sts", region="us-east-1")
        calls = []

        class CountingSts:
            def assume_role(self, **kwargs):
                calls.append(kwargs["Tags"][0]["Value"])
                return sts.assume_role(**kwargs)

        tvm = TokenVendingMachine(
            "arn:aws:iam::123456789012:role/memory-tenant", region_name="us-east-1",
            sts_client_factory=CountingSts,
        )
        store = MultiTenantStore.for_s3vectors(
            bucket="mem-bucket", role_arn=tvm.role_arn, region="us-east-1",
            embedder=KeywordEmbedder(), tvm=tvm,
        )
        acme, globex = Scope(U1, tenant_id="acme", agent_name="planner"), Scope(U1, tenant_id="globex")
        store.store(acme, "budget spend plan", conversation_id="c1")
        store.store(Scope(U1, tenant_id="acme"), "travel paris")
        store.store(globex, "budget globex")
        hits = store.retrieve(acme, "budget", top_k=5, min_score=0.3)
        assert [m.content for m in hits] == ["budget spend plan"] and hits[0].tenant_id == "acme"
        assert [m.content for m in store.retrieve(globex, "budget")] == ["budget globex"]
        indexes = make_client("s3vectors", region="us-east-1").list_indexes(vectorBucketName="mem-bucket")
        assert sorted(i["indexName"] for i in indexes["indexes"]) == ["memory-acme", "memory-globex"]
        assert store.forget(acme, conversation_id="c1") == 1
        assert [m.content for m in store.list(Scope(U1, tenant_id="acme"))] == ["travel paris"]
        assert store.forget_tenant("acme") == 1
        assert store.list(Scope(U1, tenant_id="acme")) == []  # emptied, index kept for the operator
        with pytest.raises(NotFound, match="onboard the tenant"):
            store.store(Scope(U1, tenant_id="initech"), "never onboarded")
        # one STS call per tenant for all of the above
        assert sorted(calls) == ["acme", "globex", "initech"]


def test_retention_hides_expired_memories_and_the_sweep_deletes_them(index_factory):
    """AGENT_MEMORY_TTL_DAYS on both backends: an expired memory is never retrieved (so never
    injected or recalled) and ``sweep_expired`` deletes it, paging by metadata."""
    embedder = KeywordEmbedder()
    now = [1_700_000_000.0]
    index = index_factory("memory-ttl-test", embedder.dimension)
    store = SingleTenantStore(index, embedder, ttl_seconds=86400, clock=lambda: now[0])
    store.store(Scope(U1), "budget spend old", conversation_id="c-old")
    now[0] += 2 * 86400
    fresh = store.store(Scope(U1), "budget spend new", conversation_id="c-new")
    other = store.store(Scope(U2), "budget spend", conversation_id="c-other")
    assert [m.id for m in store.retrieve(Scope(U1), "budget spend", min_score=0.0)] == [fresh.id]
    assert len(store.list(Scope(U1))) == 2  # still on disk until swept
    assert store.sweep_expired() == 1 and store.sweep_expired() == 0
    assert [m.id for m in store.list(Scope(U1))] == [fresh.id] and [m.id for m in store.list(Scope(U2))] == [other.id]
    keep_all = SingleTenantStore(index, embedder)  # no TTL: nothing expires
    assert keep_all.sweep_expired() == 0


def test_retention_holds_for_every_tenant_of_a_multi_tenant_store(tmp_path):
    """AGENT_MEMORY_TTL_DAYS in multi-tenant mode: each tenant's store keeps the TTL, so an expired
    memory is never retrieved (injected or recalled) and the tenant's sweep deletes it."""
    embedder = KeywordEmbedder()
    store = MultiTenantStore.for_local(root_dir=tmp_path / "idx", embedder=embedder, ttl_seconds=86400)
    scope = Scope(U1, tenant_id="acme")
    fresh = store.store(scope, "budget spend new", conversation_id="c-new")
    index = LocalIndex(tmp_path / "idx", index_name_for("acme"), embedder.dimension)
    two_days_ago = SingleTenantStore(index, embedder, tenant_id="acme", clock=lambda: time.time() - 2 * 86400)
    two_days_ago.store(scope, "budget spend old", conversation_id="c-old")
    assert [m.id for m in store.retrieve(scope, "budget spend", min_score=0.0)] == [fresh.id]
    assert store.sweep_expired("acme") == 1
    assert [m.id for m in store.list(scope)] == [fresh.id]


def _seed_records(embedder, now: float):
    """Vectors as strands-s3-vectors-memory 0.2.0 writes them (its source, read): ``store_memory``
    puts ``stored_at`` as ``YYYYMMDD_HHMMSS`` (UTC), its session summaries no date at all, and
    neither has ``stored_at_epoch``."""
    from datetime import datetime, timezone

    from memory.types import VectorRecord

    def seed_stamp(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y%m%d_%H%M%S")

    texts = {"seed-recent": "budget recent", "seed-old": "budget old", "seed-undated": "budget undated"}
    vectors = dict(zip(texts, embedder.embed(list(texts.values()), "index")))
    base = {"user_id": U1, "agent_name": "default"}
    return [
        VectorRecord("seed-recent", vectors["seed-recent"],
                     {**base, "content": texts["seed-recent"], "stored_at": seed_stamp(now - 7200)}),
        VectorRecord("seed-old", vectors["seed-old"],
                     {**base, "content": texts["seed-old"], "stored_at": seed_stamp(now - 3 * 86400)}),
        VectorRecord("seed-undated", vectors["seed-undated"],
                     {**base, "content": texts["seed-undated"], "conversation_id": "conv-1", "type": "summary"}),
    ]


def test_memories_of_strands_s3_vectors_memory_are_dated_by_their_stored_at(index_factory):
    """On main they had no ``stored_at_epoch``: shown as 1970, and under a TTL hidden but never
    swept. Now retrieval, the date shown and the sweep agree: a dated one counts as stored at its
    ``stored_at``; an undated one shows no date and, under a TTL, is expired (hidden and swept)."""
    from memory.plugin.context_block import format_memory

    embedder = KeywordEmbedder()
    now = 1_700_000_000.0
    index = index_factory("memory-seed-test", embedder.dimension)
    keep_all = SingleTenantStore(index, embedder, clock=lambda: now)
    keep_all.ensure()
    index.put(_seed_records(embedder, now))
    shown = {m.id: m for m in keep_all.retrieve(Scope(U1), "budget", top_k=5, min_score=0.0)}
    assert set(shown) == {"seed-recent", "seed-old", "seed-undated"}
    assert int(shown["seed-recent"].stored_at.timestamp()) == int(now - 7200)
    assert shown["seed-undated"].stored_at is None
    assert 'stored_at="unknown"' in format_memory(shown["seed-undated"]) and "1970" not in format_memory(shown["seed-undated"])
    assert [m.id for m in keep_all.list(Scope(U1))][-1] == "seed-undated"  # undated last, newest first

    ttl = SingleTenantStore(index, embedder, ttl_seconds=86400, clock=lambda: now)
    assert [m.id for m in ttl.retrieve(Scope(U1), "budget", top_k=5, min_score=0.0)] == ["seed-recent"]
    assert ttl.sweep_expired() == 2
    assert [m.id for m in keep_all.list(Scope(U1))] == ["seed-recent"]  # what was hidden is gone, nothing else


def test_a_user_id_too_long_to_store_is_refused_naming_the_argument(store):
    from memory.errors import IdentityTooLong

    with pytest.raises(IdentityTooLong, match=r"scope\.user_id is too long") as raised:
        store.store(Scope("u" * 1_950, agent_name="planner"), "budget plan")
    assert isinstance(raised.value, ValueError)
    with pytest.raises(IdentityTooLong, match=r"scope\.agent_name is too long"):
        store.store(Scope(U1, agent_name="a" * 2_000), "budget plan")
    assert store.list(Scope(U1)) == []


def test_a_memory_dated_outside_pythons_calendar_is_undated_not_a_failure_of_every_read(index_factory):
    """A ``stored_at_epoch`` no ``datetime`` can hold (written by another tool, or corrupted) made
    ``fromtimestamp`` raise in every list and retrieval of that user, so one record took all his
    memories away. It reads as undated (no date shown) and the others are unaffected."""
    from memory.types import VectorRecord

    embedder = KeywordEmbedder()
    index = index_factory("memory-dates-test", embedder.dimension)
    store = SingleTenantStore(index, embedder)
    store.ensure()
    kept = store.store(Scope(U1), "budget kept")
    (vector,) = embedder.embed(["budget far"], "index")
    index.put([VectorRecord(f"far-{epoch}", vector, {"user_id": U1, "content": "budget far", "stored_at_epoch": epoch})
               for epoch in (10**15, -(10**15), 2**62)])
    listed = {m.id: m.stored_at for m in store.list(Scope(U1))}
    assert listed.pop(kept.id) is not None and set(listed.values()) == {None} and len(listed) == 3
    found = store.retrieve(Scope(U1), "budget", top_k=5, min_score=0.0)
    assert {m.id for m in found} >= {kept.id}
