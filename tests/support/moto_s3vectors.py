"""A multi-tenant S3 Vectors store on moto (the QueryVectors route and the service's limits are
``tests.support.s3vectors_double``)."""

from __future__ import annotations

from typing import Any

from memory.aws import make_client
from memory.embedders.protocol import Embedder
from memory.index.s3vectors import S3VectorsIndex
from memory.stores.multi_tenant import MultiTenantStore
from memory.tenants import index_name_for


def multi_tenant_store(bucket: str, embedder: Embedder) -> tuple[Any, MultiTenantStore]:
    """Inside ``mock_aws``: a vector bucket and a multi-tenant store whose indexes are created on
    first use (operator credentials, no TVM); returns the s3vectors client and the store."""
    client = make_client("s3vectors", region="us-east-1")
    client.create_vector_bucket(vectorBucketName=bucket)
    store = MultiTenantStore(
        lambda tenant: S3VectorsIndex(client, bucket, index_name_for(tenant), embedder.dimension), embedder
    )
    return client, store
