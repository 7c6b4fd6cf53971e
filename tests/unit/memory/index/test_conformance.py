"""One behaviour for both VectorIndex backends: LocalIndex and S3VectorsIndex (under moto)."""

from __future__ import annotations

import math

import pytest

from memory.errors import ConfigurationError, NotFound, ValidationError
from memory.types import VectorRecord
from memory.index.protocol import VectorIndex

DATA = [
    VectorRecord("a", [1, 0, 0, 0], {"user_id": "u1", "agent_name": "x", "stored_at_epoch": 100, "type": "summary", "content": "A"}),
    VectorRecord("b", [0.9, 0.1, 0, 0], {"user_id": "u1", "stored_at_epoch": 200, "type": "fact", "tags": ["red", "blue"]}),
    VectorRecord("c", [0, 1, 0, 0], {"user_id": "u2", "agent_name": "y", "stored_at_epoch": 300, "type": "summary"}),
    VectorRecord("d", [0, 0, 1, 0], {"user_id": "u2", "agent_name": "x", "stored_at_epoch": 400, "pinned": True}),
    VectorRecord("e", [-1, 0, 0, 0], {"user_id": "u3", "stored_at_epoch": 500, "score": 2.5}),
]


@pytest.fixture
def loaded(index):
    index.put(DATA)
    return index


def keys(hits):
    return sorted(h.key for h in hits)


def test_implements_protocol(index):
    assert isinstance(index, VectorIndex)


def test_ensure_is_idempotent_and_rejects_other_dimension(index_factory, loaded):
    index_factory("memory-conformance").ensure()
    assert len(loaded.get(["a"])) == 1
    with pytest.raises(ConfigurationError, match="dimension"):
        index_factory("memory-conformance", 8).ensure()


@pytest.mark.parametrize("name", ["ab", "x" * 64, "My-Index", "memory_acme", "-memory", "memory.", "mémoire"])
def test_an_index_name_s3_vectors_refuses_is_refused_by_every_backend(index_factory, name):
    """Index names are 3-63 of ``a-z 0-9 - .``, alphanumeric at both ends (S3 Vectors' naming
    rules): refused before any request (on S3 Vectors botocore checked only the length, and its
    ParamValidationError was taken for an unavailable backend)."""
    with pytest.raises(ValidationError, match="index name"):
        index_factory(name)
    assert index_factory("a.b-" + "c" * 59).name == "a.b-" + "c" * 59  # 63 characters


def test_put_get_round_trip_skips_missing_keys(loaded):
    records = loaded.get(["c", "missing", "a"])
    assert [r.key for r in records] == ["c", "a"]
    assert records[0].metadata == DATA[2].metadata
    assert list(records[1].vector) == pytest.approx([1, 0, 0, 0])


def test_put_overwrites_existing_key(loaded):
    loaded.put([VectorRecord("a", [0, 0, 0, 1], {"user_id": "u9"})])
    (record,) = loaded.get(["a"])
    assert record.metadata == {"user_id": "u9"}
    assert loaded.query([0, 0, 0, 1], top_k=1)[0].key == "a"
    assert len(list(loaded.list())) == len(DATA)


def test_keys_lists_every_key_once(loaded):
    loaded.put([VectorRecord("a", [0, 0, 0, 1], {"user_id": "u9"})])
    assert sorted(loaded.keys()) == ["a", "b", "c", "d", "e"]


def test_delete_removes_keys_and_ignores_missing(loaded):
    loaded.delete(["a", "nope"])
    assert loaded.get(["a", "b"])[0].key == "b"
    assert "a" not in keys(loaded.query([1, 0, 0, 0], top_k=10))
    loaded.delete(["b", "c", "d", "e"])
    assert loaded.query([1, 0, 0, 0], top_k=10) == []


def test_query_orders_by_cosine_distance_and_respects_top_k(loaded):
    hits = loaded.query([2, 0, 0, 0], top_k=3)
    assert [h.key for h in hits] == ["a", "b", hits[2].key]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-6)
    assert hits[1].distance == pytest.approx(1 - 0.9 / math.hypot(0.9, 0.1), abs=1e-5)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert hits[0].metadata["content"] == "A"
    assert len(loaded.query([1, 0, 0, 0], top_k=100)) == len(DATA)
    opposite = loaded.query([1, 0, 0, 0], top_k=5)[-1]
    assert opposite.key == "e" and opposite.distance == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"user_id": "u1"}, ["a", "b"]),
        ({"user_id": {"$eq": "u2"}}, ["c", "d"]),
        ({"user_id": {"$ne": "u1"}}, ["c", "d", "e"]),
        ({"user_id": {"$in": ["u1", "u3"]}}, ["a", "b", "e"]),
        ({"user_id": {"$nin": ["u1", "u3"]}}, ["c", "d"]),
        ({"agent_name": {"$exists": True}}, ["a", "c", "d"]),
        ({"agent_name": {"$exists": False}}, ["b", "e"]),
        ({"stored_at_epoch": {"$gt": 200}}, ["c", "d", "e"]),
        ({"stored_at_epoch": {"$gte": 200}}, ["b", "c", "d", "e"]),
        ({"stored_at_epoch": {"$lt": 200}}, ["a"]),
        ({"stored_at_epoch": {"$lte": 200}}, ["a", "b"]),
        ({"score": {"$gt": 2}}, ["e"]),
        ({"tags": "red"}, ["b"]),
        ({"tags": {"$in": ["blue", "green"]}}, ["b"]),
        ({"pinned": True}, ["d"]),
        ({"user_id": "u2", "agent_name": "x"}, ["d"]),
        ({"$and": [{"user_id": "u1"}, {"type": "fact"}]}, ["b"]),
        ({"$or": [{"user_id": "u3"}, {"agent_name": "y"}]}, ["c", "e"]),
        (
            {"user_id": "u1", "$or": [{"agent_name": "x"}, {"agent_name": {"$exists": False}}]},
            ["a", "b"],
        ),
        ({"user_id": "nobody"}, []),
    ],
)
def test_filters(loaded, filter, expected):
    assert keys(loaded.query([1, 1, 1, 1], top_k=10, filter=filter)) == expected


@pytest.mark.parametrize(
    ("filter", "present_only", "with_missing"),
    [
        ({"agent_name": {"$ne": "x"}}, ["c"], ["b", "c", "e"]),
        ({"agent_name": {"$nin": ["x"]}}, ["c"], ["b", "c", "e"]),
        ({"tags": {"$nin": ["red"]}}, [], ["a", "c", "d", "e"]),
        ({"tags": {"$ne": "green"}}, ["b"], ["a", "b", "c", "d", "e"]),
    ],
)
def test_negations_on_missing_keys(loaded, ne_missing, filter, present_only, with_missing):
    """S3 Vectors does not document whether ``$ne``/``$nin`` match a vector without the key:
    LocalIndex includes it (``memory.index.filters``), the double runs both ways."""
    expected = with_missing if ne_missing == "included" else present_only
    assert keys(loaded.query([1, 1, 1, 1], top_k=10, filter=filter)) == expected


@pytest.mark.parametrize(
    "filter",
    [
        {},
        {"content": "A"},
        {"conversation_id": "c1"},
        {"user_id": {"$regex": "u"}},
        {"user_id": {"$eq": "u1", "$ne": "u2"}},
        {"user_id": {"$in": []}},
        {"user_id": {"$in": "u1"}},
        {"stored_at_epoch": {"$gt": "100"}},
        {"agent_name": {"$exists": 1}},
        {"$or": []},
        {"$and": {"user_id": "u1"}},
        {"$not": [{"user_id": "u1"}]},
        {"user_id": {"$eq": {"nested": 1}}},
    ],
)
def test_invalid_filters_are_rejected(loaded, filter):
    with pytest.raises(ValidationError):
        loaded.query([1, 0, 0, 0], top_k=1, filter=filter)


@pytest.mark.parametrize(
    "record",
    [
        VectorRecord("k" * 1025, [1, 0, 0, 0], {}),
        VectorRecord("", [1, 0, 0, 0], {}),
        VectorRecord("short", [1, 0, 0], {}),
        VectorRecord("zero", [0, 0, 0, 0], {}),
        VectorRecord("nan", [float("nan"), 0, 0, 1], {}),
        VectorRecord("inf", [float("inf"), 0, 0, 1], {}),
        VectorRecord("big", [1, 0, 0, 0], {"content": "x" * (40 * 1024)}),
        VectorRecord("filterable", [1, 0, 0, 0], {"user_id": "x" * 2100}),
        VectorRecord("keys", [1, 0, 0, 0], {f"k{i}": i for i in range(51)}),
        VectorRecord("type", [1, 0, 0, 0], {"nested": {"a": 1}}),
    ],
    ids=lambda r: r.key[:10] or "empty",
)
def test_put_limits(index, record):
    with pytest.raises(ValidationError):
        index.put([VectorRecord("ok", [1, 0, 0, 0], {}), record])
    assert index.get(["ok"]) == []  # all-or-nothing: nothing of the batch was written


def test_limits_allow_the_maxima(index):
    big = {"content": "x" * (30 * 1024), "user_id": "u" * 1000}
    index.put([VectorRecord("k" * 1024, [1, 0, 0, 0], big)])
    assert index.get(["k" * 1024])[0].metadata == big


@pytest.mark.parametrize("top_k", [0, 101, -1, 2.5, True])
def test_query_top_k_limits(loaded, top_k):
    with pytest.raises(ValidationError):
        loaded.query([1, 0, 0, 0], top_k=top_k)


@pytest.mark.parametrize("vector", [[1, 0, 0], [0, 0, 0, 0], [float("nan"), 1, 1, 1]])
def test_query_vector_limits(loaded, vector):
    with pytest.raises(ValidationError):
        loaded.query(vector, top_k=1)


def test_list_returns_every_record_with_metadata(index):
    records = [VectorRecord(f"k{i:04d}", [1, i, 0, 1], {"user_id": f"u{i % 3}"}) for i in range(1203)]
    index.put(records)  # more than two put batches of 500
    listed = {r.key: r.metadata for r in index.list()}
    assert listed == {r.key: r.metadata for r in records}
    with_data = {r.key: list(r.vector) for r in index.list(return_data=True)}
    assert with_data["k0007"] == pytest.approx([1, 7, 0, 1])


def test_get_and_delete_many_keys_in_batches(index):
    index.put([VectorRecord(f"k{i}", [1, i, 1, 0], {}) for i in range(250)])
    assert len(index.get([f"k{i}" for i in range(260)])) == 250  # > 100 per GetVectors call
    index.delete([f"k{i}" for i in range(240)])
    assert sorted(r.key for r in index.list()) == sorted(f"k{i}" for i in range(240, 250))


def test_missing_index_raises_not_found_and_drop_is_idempotent(index_factory, loaded):
    loaded.drop()
    loaded.drop()
    ghost = index_factory("memory-conformance")
    with pytest.raises(NotFound):
        ghost.query([1, 0, 0, 0], top_k=1)
    with pytest.raises(NotFound):
        ghost.put([VectorRecord("a", [1, 0, 0, 0], {})])
    with pytest.raises(NotFound):
        list(ghost.list())
    ghost.ensure()
    assert list(ghost.list()) == []
