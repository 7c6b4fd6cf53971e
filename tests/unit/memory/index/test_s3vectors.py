"""S3VectorsIndex specifics: request shapes (Stubber, validated by the service model),
list pagination, create-index parameters and AWS error mapping."""

from __future__ import annotations

import pytest
from botocore.stub import ANY, Stubber

from memory.aws import make_client
from memory.errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    MemoryLibraryError,
    NotFound,
    ValidationError,
)
from memory.types import VectorRecord
from memory.index.s3vectors import S3VectorsIndex, create_index_params


@pytest.fixture
def stubbed():
    client = make_client("s3vectors", region="us-east-1", max_attempts=1)
    with Stubber(client) as stubber:
        yield S3VectorsIndex(client, "bkt", "memory-acme", 4), stubber
        stubber.assert_no_pending_responses()


def test_create_index_params():
    assert create_index_params("bkt", "memory-acme", 1024) == {
        "vectorBucketName": "bkt",
        "indexName": "memory-acme",
        "dataType": "float32",
        "dimension": 1024,
        "distanceMetric": "cosine",
        "metadataConfiguration": {"nonFilterableMetadataKeys": ["content", "conversation_id"]},
    }


def test_ensure_creates_missing_index_with_cosine_and_non_filterable_keys(stubbed):
    index, stubber = stubbed
    stubber.add_client_error("get_index", "NotFoundException", http_status_code=404)
    stubber.add_response(
        "create_index",
        {"indexArn": _index_description(4)["indexArn"]},
        create_index_params("bkt", "memory-acme", 4),
    )
    index.ensure()


def test_ensure_tolerates_a_concurrent_creator(stubbed):
    index, stubber = stubbed
    stubber.add_client_error("get_index", "NotFoundException", http_status_code=404)
    stubber.add_client_error("create_index", "ConflictException", http_status_code=409)
    stubber.add_response("get_index", {"index": {**_index_description(4), "metadataConfiguration": {
        "nonFilterableMetadataKeys": ["content", "conversation_id"]}}})  # made with the same parameters
    index.ensure()


def test_ensure_refuses_an_index_with_another_distance_metric(stubbed):
    """Scores are ``1 - cosine distance``: on a euclidean index (an existing one named by
    ``create_store(index_name=...)``) every floor and fusion would silently use another scale."""
    index, stubber = stubbed
    stubber.add_response("get_index", {"index": {**_index_description(4), "distanceMetric": "euclidean"}})
    with pytest.raises(ConfigurationError, match="euclidean"):
        index.ensure()


def _index_description(dimension):
    return {
        "vectorBucketName": "bkt",
        "indexName": "memory-acme",
        "indexArn": "arn:aws:s3vectors:us-east-1:123456789012:bucket/bkt/index/memory-acme",
        "creationTime": "2025-01-01T00:00:00Z",
        "dataType": "float32",
        "dimension": dimension,
        "distanceMetric": "cosine",
    }


def _query_request(top_k, vector):
    """The QueryVectors request of ``index.query(vector, top_k, filter={"user_id": {"$eq": "u1"}})``."""
    return {
        "vectorBucketName": "bkt",
        "indexName": "memory-acme",
        "topK": top_k,
        "queryVector": {"float32": vector},
        "filter": {"user_id": {"$eq": "u1"}},
        "returnDistance": True,
        "returnMetadata": True,
    }


def test_query_request_shape_and_result(stubbed):
    index, stubber = stubbed
    stubber.add_response(
        "query_vectors",
        {
            "vectors": [
                {"key": "far", "distance": 0.7, "metadata": {"user_id": "u1"}},
                {"key": "near", "distance": 0.1, "metadata": {"user_id": "u1", "content": "hi"}},
            ],
            "distanceMetric": "cosine",
        },
        _query_request(2, [1.0, 0.0, 0.0, 0.5]),
    )
    hits = index.query([1, 0, 0, 0.5], top_k=2, filter={"user_id": {"$eq": "u1"}})
    assert [(h.key, h.distance) for h in hits] == [("near", 0.1), ("far", 0.7)]
    assert hits[0].metadata == {"user_id": "u1", "content": "hi"}


def test_query_follows_next_token_with_the_same_parameters(stubbed):
    """Since June 2026 QueryVectors returns its ``topK`` results across pages when they exceed the
    page size (``nextToken`` in the model; the S3 user guide: "continue making QueryVectors
    requests with the same queryVector, topK, filter, and queryMode parameters, passing the
    nextToken"): every page's hits are candidates."""
    index, stubber = stubbed
    request = _query_request(3, [1.0, 0.0, 0.0, 0.0])
    page = lambda keys, **more: {  # noqa: E731
        "vectors": [{"key": k, "distance": d, "metadata": {"user_id": "u1"}} for k, d in keys],
        "distanceMetric": "cosine",
        **more,
    }
    stubber.add_response("query_vectors", page([("a", 0.1), ("b", 0.2)], nextToken="page-2"), request)
    stubber.add_response("query_vectors", page([("c", 0.3)]), {**request, "nextToken": "page-2"})
    hits = index.query([1, 0, 0, 0], top_k=3, filter={"user_id": {"$eq": "u1"}})
    assert [h.key for h in hits] == ["a", "b", "c"]


def test_a_key_on_two_query_pages_counts_once_at_its_best_distance(stubbed):
    """A vector rewritten between two pages of one query can be answered on both: it is one
    candidate (its nearer distance), not two, and the other candidates keep their places."""
    index, stubber = stubbed
    request = _query_request(3, [1.0, 0.0, 0.0, 0.0])
    page = lambda keys, **more: {  # noqa: E731
        "vectors": [{"key": k, "distance": d, "metadata": {"user_id": "u1", "v": d}} for k, d in keys],
        "distanceMetric": "cosine",
        **more,
    }
    stubber.add_response("query_vectors", page([("a", 0.3), ("b", 0.4)], nextToken="page-2"), request)
    stubber.add_response("query_vectors", page([("a", 0.1), ("c", 0.5)]), {**request, "nextToken": "page-2"})
    hits = index.query([1, 0, 0, 0], top_k=3, filter={"user_id": {"$eq": "u1"}})
    assert [(h.key, h.distance, h.metadata["v"]) for h in hits] == [("a", 0.1, 0.1), ("b", 0.4, 0.4), ("c", 0.5, 0.5)]


def test_query_sends_several_conditions_of_one_mapping_as_an_explicit_and(stubbed):
    """The filter language ANDs the entries of one mapping (``memory.index.filters``), but the
    S3 Vectors documentation shows several conditions only under ``$and`` (the seed package:
    "S3 Vectors requires $and for compound filters"): the request carries that documented form,
    at every level, instead of a multi-key object the service may refuse with a 400."""
    index, stubber = stubbed
    flt = {"user_id": "u1", "stored_at_epoch": {"$gte": 5}, "$or": [{"agent_name": "a", "type": "fact"}]}
    documented = {"$and": [
        {"user_id": "u1"},
        {"stored_at_epoch": {"$gte": 5}},
        {"$or": [{"$and": [{"agent_name": "a"}, {"type": "fact"}]}]},
    ]}
    stubber.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"},
                         {**_query_request(5, [0.0, 1.0, 0.0, 0.0]), "filter": documented})
    assert index.query([0, 1, 0, 0], top_k=5, filter=flt) == []


def test_query_without_filter_omits_it(stubbed):
    index, stubber = stubbed
    expected = {
        "vectorBucketName": "bkt",
        "indexName": "memory-acme",
        "topK": 5,
        "queryVector": ANY,
        "returnDistance": True,
        "returnMetadata": True,
    }
    stubber.add_response("query_vectors", {"vectors": [], "distanceMetric": "cosine"}, expected)
    assert index.query([0, 1, 0, 0], top_k=5) == []


def stub_two_list_pages(stubber: Stubber) -> None:
    """ListVectors answers key "a" on a first page and key "b" on the second."""
    base = {"vectorBucketName": "bkt", "indexName": "memory-acme", "maxResults": 1000,
            "returnMetadata": True, "returnData": False}
    stubber.add_response("list_vectors", {"vectors": [{"key": "a", "metadata": {"n": 1}}],
                                          "nextToken": "page-2"}, base)
    stubber.add_response("list_vectors", {"vectors": [{"key": "b", "metadata": {"n": 2}}]},
                         {**base, "nextToken": "page-2"})


def test_list_follows_next_token(stubbed):
    index, stubber = stubbed
    stub_two_list_pages(stubber)
    assert [(r.key, r.metadata) for r in index.list()] == [("a", {"n": 1}), ("b", {"n": 2})]


def test_list_reads_a_page_only_when_the_previous_one_is_consumed(stubbed):
    """A tenant index can hold millions of vectors, each with up to 40 KB of metadata: ``forget``
    and retention keep what they need of each page (its keys), never every page at once."""
    index, stubber = stubbed
    stub_two_list_pages(stubber)
    calls: list[str] = []
    index.client.meta.events.register("before-parameter-build.s3vectors.ListVectors", lambda **_: calls.append("list"))
    records = index.list()
    assert next(records).key == "a" and calls == ["list"]
    assert [r.key for r in records] == ["b"] and calls == ["list", "list"]


def test_a_key_on_two_list_pages_is_listed_once_as_first_listed(stubbed):
    """A vector rewritten while an index is listed can come again on a later page: ``list``
    yields each key once (its first listing), and ``count`` counts it once."""
    index, stubber = stubbed
    for returned in (True, False):
        base = {"vectorBucketName": "bkt", "indexName": "memory-acme", "maxResults": 1000,
                "returnMetadata": returned, "returnData": False}  # fmt: skip
        stubber.add_response("list_vectors", {"vectors": [{"key": "a", "metadata": {"n": 1}}, {"key": "b"}],
                                              "nextToken": "p2"}, base)  # fmt: skip
        stubber.add_response("list_vectors", {"vectors": [{"key": "c"}, {"key": "a", "metadata": {"n": 2}}]},
                             {**base, "nextToken": "p2"})  # fmt: skip
    assert [(r.key, r.metadata) for r in index.list()] == [("a", {"n": 1}), ("b", {}), ("c", {})]
    assert index.count() == 3


def test_count_lists_keys_only_across_pages(stubbed):
    """Counting needs neither metadata nor data: ListVectors is asked for keys only (the service
    model's returnMetadata/returnData default to false, sent as false), every page followed."""
    index, stubber = stubbed
    model = index.client.meta.service_model.operation_model("ListVectors")
    members = model.input_shape.members
    assert members["returnMetadata"].type_name == members["returnData"].type_name == "boolean"
    assert "With only <code>s3vectors:ListVectors</code> permission, you can list vector keys" in model.documentation
    base = {"vectorBucketName": "bkt", "indexName": "memory-acme", "maxResults": 1000,
            "returnMetadata": False, "returnData": False}  # fmt: skip
    stubber.add_response("list_vectors", {"vectors": [{"key": "a"}, {"key": "b"}], "nextToken": "p2"}, base)
    stubber.add_response("list_vectors", {"vectors": [{"key": "c"}]}, {**base, "nextToken": "p2"})
    assert index.count() == 3
    stubber.assert_no_pending_responses()


def test_put_sends_batches_of_500(stubbed):
    index, stubber = stubbed
    records = [VectorRecord(f"k{i}", [1, 0, 0, 0], {"i": i}) for i in range(1001)]
    for _ in range(3):  # 500 + 500 + 1
        stubber.add_response("put_vectors", {}, {"vectorBucketName": "bkt", "indexName": "memory-acme",
                                                 "vectors": ANY})
    index.put(records)
    # the Stubber validates each request against the model (max 500 vectors per call)


def test_put_halves_a_batch_the_index_cannot_take_at_once(stubbed):
    """PutVectors (service model): "The number of vectors in a single request must not exceed the
    resource capacity, otherwise the request will be rejected with the error
    ServiceUnavailableException". A conversation's units went as one batch of up to ~450 on
    every retry, so on such an index it never stored and was dead-lettered; a refused batch is
    now sent again as two halves (down to one vector, which still fails as BackendUnavailable)."""
    index, stubber = stubbed
    records = [VectorRecord(f"k{i}", [1, 0, 0, 0], {"i": i}) for i in range(4)]

    def put(keys):
        vectors = [{"key": k, "data": {"float32": [1.0, 0.0, 0.0, 0.0]}, "metadata": {"i": int(k[1:])}} for k in keys]
        return {"vectorBucketName": "bkt", "indexName": "memory-acme", "vectors": vectors}

    busy = {"service_error_code": "ServiceUnavailableException", "http_status_code": 503,
            "service_message": "Currently unable to handle the request"}
    stubber.add_client_error("put_vectors", expected_params=put(["k0", "k1", "k2", "k3"]), **busy)
    stubber.add_client_error("put_vectors", expected_params=put(["k0", "k1"]), **busy)
    stubber.add_response("put_vectors", {}, put(["k0"]))
    stubber.add_response("put_vectors", {}, put(["k1"]))
    stubber.add_response("put_vectors", {}, put(["k2", "k3"]))
    index.put(records)
    stubber.add_client_error("put_vectors", expected_params=put(["k0"]), **busy)
    with pytest.raises(BackendUnavailable, match="ServiceUnavailableException"):
        index.put(records[:1])
    stubber.add_client_error("put_vectors", "ThrottlingException", http_status_code=429, expected_params=put(["k0", "k1"]))
    with pytest.raises(BackendUnavailable, match="ThrottlingException"):  # throttled: not halved
        index.put(records[:2])


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AccessDeniedException", 403, AccessDenied),
        ("403", 403, AccessDenied),  # how moto reports an IAM denial
        ("NotFoundException", 404, NotFound),
        ("ThrottlingException", 429, BackendUnavailable),
        ("ServiceUnavailableException", 503, BackendUnavailable),
        ("InternalServerException", 500, BackendUnavailable),
        ("RequestTimeoutException", 408, BackendUnavailable),  # the model: "Retry your request"
        # Expired credentials (the S3 Vectors/STS code, S3's): refreshed, not the caller's fault.
        ("ExpiredTokenException", 403, BackendUnavailable),
        ("ExpiredTokenException", 400, BackendUnavailable),
        ("ExpiredToken", 400, BackendUnavailable),
        ("ConflictException", 409, MemoryLibraryError),
        # A KMS key the service cannot use (the model's Kms*Exception shapes, all 400): the
        # operator's key, not the caller's invalid input (on main: ValidationError).
        ("KmsDisabledException", 400, ConfigurationError),
        ("KmsInvalidStateException", 400, ConfigurationError),
        ("KmsNotFoundException", 400, ConfigurationError),
        ("KmsInvalidKeyUsageException", 400, ConfigurationError),
        ("ValidationException", 400, ValidationError),
    ],
)
def test_errors_are_mapped(stubbed, code, status, error):
    index, stubber = stubbed
    stubber.add_client_error("get_vectors", code, http_status_code=status)
    with pytest.raises(error) as info:
        index.get(["a"])
    assert "memory-acme" in str(info.value)


def test_moto_access_denial_maps_to_access_denied(monkeypatch):
    """moto with IAM enforcement denies with code 403: the index reports AccessDenied."""
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    with mock_aws():
        admin = make_client("s3vectors", region="us-east-1")
        admin.create_vector_bucket(vectorBucketName="bkt")
        iam = make_client("iam", region="us-east-1")
        iam.create_user(UserName="nobody")
        keys = iam.create_access_key(UserName="nobody")["AccessKey"]

        @set_initial_no_auth_action_count(0)
        def denied():
            from memory.aws import StaticCredentials

            client = make_client(
                "s3vectors",
                region="us-east-1",
                max_attempts=1,
                credentials=StaticCredentials(keys["AccessKeyId"], keys["SecretAccessKey"]),
            )
            S3VectorsIndex(client, "bkt", "memory-acme", 4).ensure()

        with pytest.raises(AccessDenied):
            denied()


@pytest.mark.parametrize("bucket", ["ab", "b" * 64, "My-Bucket", "mem.bucket", "mem_bucket", "-mem", "mem-"])
def test_a_vector_bucket_name_s3_vectors_refuses_is_refused_before_any_request(bucket):
    """Vector bucket names are 3-63 of ``a-z 0-9 -``, alphanumeric at both ends: a mistyped
    AGENT_VECTOR_BUCKET is invalid input, found when the index is built, not a backend fault."""
    client = make_client("s3vectors", region="us-east-1", max_attempts=1)
    with Stubber(client), pytest.raises(ValidationError, match="bucket name"):
        S3VectorsIndex(client, bucket, "memory-acme", 4)


def test_a_request_botocore_refuses_is_invalid_input_not_an_unavailable_backend():
    """botocore's own request validation (ParamValidationError, a BotoCoreError) is never
    transient: it was BackendUnavailable, so a request no retry can fix was retried as a
    summary for max_busy_seconds and answered 503 (an outbox bucket name with capitals: S3's
    client refuses it before sending). It is a ValidationError, without botocore's report (which
    can quote the value)."""
    from botocore.exceptions import ParamValidationError

    from memory.aws import translate_error

    report = "Invalid type for parameter vectors[0].metadata.content, value: secret, type: <class 'bytes'>"
    error = translate_error(ParamValidationError(report=report), "op x")
    assert isinstance(error, ValidationError)
    assert "vectors[0].metadata.content" in str(error) and "secret" not in str(error)
