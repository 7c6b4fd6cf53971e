"""Fixtures of the memory tests: moto S3 Vectors (with the shared QueryVectors route) and
index factories for the conformance suite, which runs on both backends."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.support.moto_s3vectors import install_query_route


@pytest.fixture
def moto_query_route(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the QueryVectors route for the duration of one test."""
    install_query_route(monkeypatch)
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
    from memory.index.local import LocalIndex
    from memory.index.s3vectors import S3VectorsIndex

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
