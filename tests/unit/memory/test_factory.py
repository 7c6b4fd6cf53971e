"""memory.factory: backend x tenancy x embedder selection, and its configuration errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memory.embedders.bedrock import BedrockEmbedder
from memory.embedders.local import LocalEmbedder
from memory.errors import ConfigurationError, ValidationError
from memory.factory import create_embedder, create_store
from memory.index.local import LocalIndex
from memory.index.s3vectors import S3VectorsIndex
from memory.stores.multi_tenant import MultiTenantStore
from memory.stores.single_tenant import SingleTenantStore
from memory.types import Scope


class Fixed:
    """A 4-d embedder: every text maps to the same unit vector."""

    dimension = 4

    def embed(self, texts: Any, purpose: Any) -> list[list[float]]:
        return [[1.0, 0.0, 0.0, 0.0] for _ in texts]


def test_embedders_by_name() -> None:
    assert isinstance(create_embedder("local"), LocalEmbedder)
    bedrock = create_embedder("bedrock", region="us-east-1")
    assert isinstance(bedrock, BedrockEmbedder) and bedrock.dimension == 1024
    with pytest.raises(ConfigurationError, match="region"):
        create_embedder("bedrock")
    with pytest.raises(ConfigurationError, match="unknown embedder"):
        create_embedder("openai")  # type: ignore[arg-type]


def test_local_single_tenant_store_serves_one_tenant(tmp_path: Path) -> None:
    store = create_store(backend="local", tenancy="single", embedder=Fixed(), local_dir=tmp_path, tenant_id="acme")
    assert isinstance(store, SingleTenantStore) and isinstance(store.index, LocalIndex)
    assert store.index.name == "memory-acme"
    store.store(Scope("alice", "acme"), "kept")
    assert [m.content for m in store.list(Scope("alice"))] == ["kept"]
    with pytest.raises(ValidationError, match="tenant"):
        store.list(Scope("alice", "other"))


def test_local_multi_tenant_store_keeps_tenants_apart(tmp_path: Path) -> None:
    store = create_store(backend="local", tenancy="multi", embedder=Fixed(), local_dir=tmp_path)
    assert isinstance(store, MultiTenantStore)
    store.store(Scope("alice", "tenant-001"), "budget is 2M")
    assert store.retrieve(Scope("alice", "tenant-002"), "budget") == []
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == ["memory-tenant-001.sqlite3", "memory-tenant-002.sqlite3"]


def test_s3vectors_single_tenant_uses_the_given_client_and_index(s3vectors_client: Any) -> None:
    from tests.unit.memory.conftest import BUCKET

    store = create_store(backend="s3vectors", tenancy="single", embedder=Fixed(), bucket=BUCKET,
                         index_name="memory", s3vectors_client=s3vectors_client, create_index=True)
    assert isinstance(store.index, S3VectorsIndex) and store.index.name == "memory"
    store.store(Scope("alice"), "stored through the operator's client")
    assert s3vectors_client.get_index(vectorBucketName=BUCKET, indexName="memory")["index"]["dimension"] == 4


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"backend": "local", "tenancy": "multi"}, "local_dir"),
        ({"backend": "s3vectors", "tenancy": "multi", "region": "us-east-1"}, "bucket"),
        ({"backend": "s3vectors", "tenancy": "multi", "bucket": "b", "region": "us-east-1"}, "needs tvm_role_arn"),
        ({"backend": "s3vectors", "tenancy": "single", "bucket": "b", "tenant_id": "t"}, "region"),
        ({"backend": "s3vectors", "tenancy": "single", "bucket": "b", "region": "us-east-1"}, "index_name or tenant_id"),
        ({"backend": "pinecone", "tenancy": "single"}, "unknown backend"),
        ({"backend": "local", "tenancy": "some", "local_dir": "."}, "unknown tenancy"),
        ({"backend": "local", "tenancy": "multi", "local_dir": ".", "default_min_score": 5.0}, "default_min_score"),
        ({"backend": "local", "tenancy": "single", "local_dir": ".", "tenant_id": "t", "default_min_score": -2.0},
         "default_min_score"),
    ],
)
def test_missing_settings_are_configuration_errors(options: dict[str, Any], match: str) -> None:
    """Each error names the create_store argument to give (or the value to change)."""
    with pytest.raises(ConfigurationError, match=match):
        create_store(embedder=Fixed(), **options)
