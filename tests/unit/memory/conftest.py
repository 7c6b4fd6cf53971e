"""A QueryVectors route for moto's S3 Vectors mock (moto 5.2 has none), for round-trip tests.

It answers with exact cosine distances and evaluates the filter with ``memory.filters``, so
store/retrieve round trips run end to end through boto3 while the request is still parsed
against the real service model.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pytest
from moto.core.responses import ActionResult
from moto.s3vectors import urls as s3vectors_urls
from moto.s3vectors.responses import S3VectorsResponse

from memory.filters import compile_filter


def _query_vectors(self: S3VectorsResponse) -> ActionResult:
    index = self.s3vectors_backend.get_index(
        vector_bucket_name=self._get_param("vectorBucketName"),
        index_name=self._get_param("indexName"),
        index_arn=self._get_param("indexArn"),
    )
    top_k = int(self._get_param("topK"))
    query = np.asarray(self._get_param("queryVector")["float32"], dtype=np.float64)
    predicate = compile_filter(self._get_param("filter"))
    scored = []
    for vector in index.vectors.values():
        metadata = vector.metadata or {}
        if not predicate(metadata):
            continue
        data = np.asarray(vector.data["float32"], dtype=np.float64)
        cosine = float(data @ query / (np.linalg.norm(data) * np.linalg.norm(query)))
        scored.append((1.0 - cosine, vector.key, metadata))
    scored.sort(key=lambda item: item[0])
    with_metadata = self._get_bool_param("returnMetadata", False)
    with_distance = self._get_bool_param("returnDistance", False)
    result: list[dict[str, Any]] = []
    for distance, key, metadata in scored[:top_k]:
        item: dict[str, Any] = {"key": key}
        if with_distance:
            item["distance"] = distance
        if with_metadata:
            item["metadata"] = metadata
        result.append(item)
    return ActionResult({"vectors": result, "distanceMetric": index.distance_metric})


@pytest.fixture
def moto_query_route(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the QueryVectors route for the duration of one test."""
    monkeypatch.setattr(S3VectorsResponse, "query_vectors", _query_vectors, raising=False)
    monkeypatch.setitem(s3vectors_urls.url_paths, "{0}/QueryVectors$", S3VectorsResponse.dispatch)
    yield


BUCKET = "memory-test-bucket"
DIMENSION = 4


@pytest.fixture
def s3vectors_client(moto_query_route: None) -> Iterator[Any]:
    """A boto3 s3vectors client inside mock_aws, with a vector bucket and the query route."""
    from moto import mock_aws

    from memory.aws import make_client

    with mock_aws():
        client = make_client("s3vectors", region="us-east-1")
        client.create_vector_bucket(vectorBucketName=BUCKET)
        yield client


@pytest.fixture(params=["local", "s3vectors"])
def index_factory(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """Builds indexes (name, dimension) on either backend; the conformance suite runs on both."""
    from memory.local_index import LocalIndex
    from memory.s3vectors_index import S3VectorsIndex

    if request.param == "local":
        return lambda name, dimension=DIMENSION: LocalIndex(tmp_path / "indexes", name, dimension)
    client = request.getfixturevalue("s3vectors_client")
    return lambda name, dimension=DIMENSION: S3VectorsIndex(client, BUCKET, name, dimension)


@pytest.fixture
def index(index_factory: Any) -> Any:
    """An ensured, empty 4-d index on each backend."""
    idx = index_factory("memory-conformance")
    idx.ensure()
    return idx
