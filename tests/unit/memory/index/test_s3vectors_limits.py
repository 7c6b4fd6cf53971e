"""S3VectorsIndex against the documented service limits (enforced by the S3 Vectors double), and
the double itself against the documentation's own filter examples.

Batch boundaries for every batched operation: 0, 1, limit, limit + 1 and 2 x limit + 1 items;
the expected request sizes are literals, so changing a batch size or dropping batching fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from memory.errors import ConfigurationError, ValidationError
from memory.index.s3vectors import S3VectorsIndex
from memory.types import VectorRecord
from tests.support.s3vectors_double import S3VectorsDouble, evaluate
from tests.unit.memory.conftest import BUCKET

DIM = 4
# (items, expected request sizes) at 0, 1, limit, limit + 1 and 2 x limit + 1
BOUNDARIES_500 = [(0, []), (1, [1]), (500, [500]), (501, [500, 1]), (1001, [500, 500, 1])]
BOUNDARIES_100 = [(0, []), (1, [1]), (100, [100]), (101, [100, 1]), (201, [100, 100, 1])]


@pytest.fixture
def index(s3vectors_client: Any) -> S3VectorsIndex:
    idx = S3VectorsIndex(s3vectors_client, BUCKET, "memory-limits", DIM)
    idx.ensure()
    return idx


def _records(n: int) -> list[VectorRecord]:
    return [VectorRecord(f"k{i}", [1.0, float(i % 7), 0.0, 1.0], {"user_id": "u"}) for i in range(n)]


def _load(client: Any, n: int) -> None:
    """Put ``n`` vectors straight through the client (500 at a time), not through the index."""
    vectors = [{"key": f"k{i}", "data": {"float32": [1.0, 0.0, 0.0, 1.0]}} for i in range(n)]
    for start in range(0, n, 500):
        client.put_vectors(vectorBucketName=BUCKET, indexName="memory-limits", vectors=vectors[start : start + 500])


@pytest.mark.parametrize(("n", "requests"), BOUNDARIES_500)
def test_put_batches(index: S3VectorsIndex, s3vectors_double: S3VectorsDouble, n: int, requests: list[int]) -> None:
    index.put(_records(n))
    assert s3vectors_double.count("PutVectors") == requests
    assert len(list(index.list())) == n


@pytest.mark.parametrize(("n", "requests"), BOUNDARIES_500)
def test_delete_batches(
    index: S3VectorsIndex, s3vectors_client: Any, s3vectors_double: S3VectorsDouble, n: int, requests: list[int]
) -> None:
    _load(s3vectors_client, n + 1)
    index.delete([f"k{i}" for i in range(n)])
    assert s3vectors_double.count("DeleteVectors") == requests
    assert [r.key for r in index.list()] == [f"k{n}"]  # exactly the others are gone


@pytest.mark.parametrize(("n", "requests"), BOUNDARIES_100)
def test_get_batches(
    index: S3VectorsIndex, s3vectors_client: Any, s3vectors_double: S3VectorsDouble, n: int, requests: list[int]
) -> None:
    _load(s3vectors_client, 202)
    wanted = [f"k{i}" for i in reversed(range(n))]
    assert [r.key for r in index.get(wanted)] == wanted
    assert s3vectors_double.count("GetVectors") == requests


def test_put_splits_wide_vectors_under_the_request_payload_limit(
    s3vectors_client: Any, s3vectors_double: S3VectorsDouble
) -> None:
    """A request payload is at most 20 MiB: 500 vectors of 3,072 float32 values (Nova's widest
    embeddings) are ~32 MiB of JSON (botocore writes each value as a 17-digit decimal), so a full
    batch by count is refused."""
    wide = S3VectorsIndex(s3vectors_client, BUCKET, "memory-wide", 3072)
    wide.ensure()
    vectors = np.random.default_rng(7).normal(size=(500, 3072)).astype(np.float32)
    wide.put([VectorRecord(f"k{i}", v, {"user_id": "u", "content": "x" * 800}) for i, v in enumerate(vectors)])
    sizes = s3vectors_double.count("PutVectors")
    assert sum(sizes) == 500 and len(sizes) >= 2  # ~32 MiB in requests of at most 20 MiB
    assert len(list(wide.list())) == 500


def test_ensure_refuses_an_existing_index_where_content_is_filterable(s3vectors_client: Any) -> None:
    """An index made by another tool (or the console) with other non-filterable keys: ``content``
    then counts against the 2 KB of filterable metadata and any longer memory is refused at
    PutVectors, long after start-up. GetIndex reports the keys; ensure says so at once."""
    s3vectors_client.create_index(vectorBucketName=BUCKET, indexName="memory-other", dataType="float32",
                                  dimension=DIM, distanceMetric="cosine",
                                  metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})
    other = S3VectorsIndex(s3vectors_client, BUCKET, "memory-other", DIM)
    with pytest.raises(ConfigurationError, match="content"):
        other.ensure()
    with pytest.raises(ValidationError):  # what storing a summary would meet otherwise
        other.put([VectorRecord("k", [1.0, 0, 0, 0], {"user_id": "u", "content": "x" * 3000})])



def test_ensure_refuses_an_existing_index_created_without_non_filterable_keys(s3vectors_client: Any) -> None:
    """The most common index made by hand (console, ``aws s3vectors create-index`` or CDK without
    a metadata configuration) has every metadata key filterable, and GetIndex then reports no
    metadata configuration (``nonFilterableMetadataKeys`` has at least one key when there is
    one). ``content`` counts against the 2 KB of filterable metadata there: an 800-character
    excerpt in Japanese is refused at PutVectors and its conversation dead-lettered."""
    s3vectors_client.create_index(vectorBucketName=BUCKET, indexName="memory-plain", dataType="float32",
                                  dimension=DIM, distanceMetric="cosine")
    assert "metadataConfiguration" not in s3vectors_client.get_index(
        vectorBucketName=BUCKET, indexName="memory-plain")["index"]
    plain = S3VectorsIndex(s3vectors_client, BUCKET, "memory-plain", DIM)
    with pytest.raises(ConfigurationError, match="content"):
        plain.ensure()
    with pytest.raises(ValidationError):  # what storing an excerpt would meet otherwise
        plain.put([VectorRecord("k", [1.0, 0, 0, 0], {"user_id": "u", "content": "記憶" * 400})])


# --- the double enforces what the documentation says the service enforces --------------------


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def test_double_refuses_oversized_requests_like_the_service(s3vectors_client: Any, index: S3VectorsIndex) -> None:
    c, target = s3vectors_client, {"vectorBucketName": BUCKET, "indexName": "memory-limits"}
    one = {"key": "k", "data": {"float32": [1.0, 0.0, 0.0, 0.0]}}
    assert _code(lambda: c.put_vectors(**target, vectors=[{**one, "key": f"k{i}"} for i in range(501)])) == "ValidationException"
    assert _code(lambda: c.delete_vectors(**target, keys=[f"k{i}" for i in range(501)])) == "ValidationException"
    assert _code(lambda: c.get_vectors(**target, keys=[f"k{i}" for i in range(101)])) == "ValidationException"
    assert _code(lambda: c.get_vectors(**target, keys=["k" * 1025])) == "ValidationException"
    assert _code(lambda: c.put_vectors(**target, vectors=[{**one, "key": "k" * 1025}])) == "ValidationException"
    query = {**target, "queryVector": {"float32": [1.0, 0.0, 0.0, 0.0]}}
    assert _code(lambda: c.query_vectors(**query, topK=101)) == "ValidationException"
    assert _code(lambda: c.query_vectors(**target, queryVector={"float32": [1.0, 0.0]}, topK=1)) == "ValidationException"
    assert _code(lambda: c.query_vectors(**query, topK=1, filter={"user_id": {"$regex": "u"}})) == "ValidationException"
    # at the limits, accepted
    c.put_vectors(**target, vectors=[{**one, "key": f"k{i}"} for i in range(500)])
    assert len(c.get_vectors(**target, keys=[f"k{i}" for i in range(100)])["vectors"]) == 100
    assert len(c.query_vectors(**query, topK=100)["vectors"]) == 100
    c.delete_vectors(**target, keys=[f"k{i}" for i in range(500)])


def test_double_measures_filterable_metadata_apart(s3vectors_client: Any, index: S3VectorsIndex) -> None:
    """``content`` is non-filterable in our indexes (CreateIndex): 30 KB of it is fine, 3 KB of a
    filterable key is not, and neither is more than 40 KB in all."""
    c, target = s3vectors_client, {"vectorBucketName": BUCKET, "indexName": "memory-limits"}

    def put(metadata: dict[str, Any]) -> None:
        c.put_vectors(**target, vectors=[{"key": "m", "data": {"float32": [1.0, 0, 0, 0]}, "metadata": metadata}])

    put({"user_id": "u", "content": "x" * 30_000})
    assert _code(lambda: put({"user_id": "u" * 3000})) == "ValidationException"
    assert _code(lambda: put({"user_id": "u", "content": "x" * 41_000})) == "ValidationException"
    assert _code(lambda: put({f"k{i}": i for i in range(51)})) == "ValidationException"
    # a non-filterable key is invisible to filters
    hits = c.query_vectors(**target, queryVector={"float32": [1.0, 0, 0, 0]}, topK=1, filter={"content": {"$exists": True}})
    assert hits["vectors"] == []


# The documentation's examples (s3-vectors-metadata-filtering), evaluated by the double.
MOVIE = {"genre": "documentary", "year": 2020, "category": ["documentary", "romance"], "rated": True}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"genre": "documentary"}, True),
        ({"genre": {"$eq": "documentary"}}, True),
        ({"genre": {"$ne": "drama"}}, True),
        ({"year": {"$gt": 2019}}, True),
        ({"year": {"$gte": 2020}}, True),
        ({"year": {"$lt": 2020}}, False),
        ({"year": {"$lte": 2020}}, True),
        ({"genre": {"$in": ["comedy", "documentary"]}}, True),
        ({"genre": {"$nin": ["comedy", "documentary"]}}, False),
        ({"genre": {"$exists": True}}, True),
        ({"studio": {"$exists": True}}, False),
        ({"studio": {"$exists": False}}, True),
        ({"category": {"$eq": "documentary"}}, True),  # the documented array rule
        ({"category": {"$in": ["romance", "horror"]}}, True),
        ({"category": {"$nin": ["romance"]}}, False),
        ({"category": {"$ne": "horror"}}, True),
        ({"rated": True}, True),
        ({"rated": 1}, False),  # a boolean is not a number
        ({"year": "2020"}, False),  # nor is a string
        ({"$and": [{"genre": "documentary"}, {"year": {"$gte": 2020}}]}, True),
        ({"$and": [{"genre": "documentary"}, {"year": {"$gt": 2020}}]}, False),
        ({"$or": [{"genre": "drama"}, {"year": 2020}]}, True),
        ({"$or": [{"genre": "drama"}, {"year": 2021}]}, False),
    ],
)
def test_double_filter_semantics(flt: dict[str, Any], expected: bool) -> None:
    for missing in ("excluded", "included"):
        assert evaluate(flt, MOVIE, missing=missing) is expected


def test_double_missing_key_policies_differ_only_on_negations() -> None:
    for flt in ({"studio": {"$ne": "x"}}, {"studio": {"$nin": ["x"]}}):
        assert evaluate(flt, MOVIE, missing="excluded") is False
        assert evaluate(flt, MOVIE, missing="included") is True
    for flt in ({"studio": "x"}, {"studio": {"$in": ["x"]}}, {"studio": {"$gt": 1}}):
        assert evaluate(flt, MOVIE, missing="excluded") is evaluate(flt, MOVIE, missing="included") is False
