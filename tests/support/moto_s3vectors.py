"""A QueryVectors route for moto's S3 Vectors mock (moto 5.2.5 has none).

``install_query_route(monkeypatch)`` registers it for one test (call before ``mock_aws``
starts). The route answers with exact cosine distances and evaluates the filter with
``memory.index.filters``, so store/retrieve round trips go through boto3 while every request is
still parsed against the real service model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from moto.core.responses import ActionResult
from moto.s3vectors import urls as s3vectors_urls
from moto.s3vectors.responses import S3VectorsResponse

from memory.aws import make_client
from memory.index.filters import compile_filter
from memory.embedders.protocol import Embedder
from memory.index.s3vectors import S3VectorsIndex
from memory.stores.multi_tenant import MultiTenantStore
from memory.tenants import index_name_for


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
        if predicate(metadata):
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


def install_query_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the QueryVectors route on moto's S3 Vectors mock until the test ends."""
    monkeypatch.setattr(S3VectorsResponse, "query_vectors", _query_vectors, raising=False)
    monkeypatch.setitem(s3vectors_urls.url_paths, "{0}/QueryVectors$", S3VectorsResponse.dispatch)


def multi_tenant_store(bucket: str, embedder: Embedder) -> tuple[Any, MultiTenantStore]:
    """Inside ``mock_aws``: a vector bucket and a multi-tenant store whose indexes are created on
    first use (operator credentials, no TVM); returns the s3vectors client and the store."""
    client = make_client("s3vectors", region="us-east-1")
    client.create_vector_bucket(vectorBucketName=bucket)
    store = MultiTenantStore(
        lambda tenant: S3VectorsIndex(client, bucket, index_name_for(tenant), embedder.dimension), embedder
    )
    return client, store
