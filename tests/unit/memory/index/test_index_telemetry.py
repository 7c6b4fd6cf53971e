"""Vector index calls as database spans, on S3 Vectors (moto, with the shared QueryVectors route)."""

from __future__ import annotations

from typing import Any

from memory.index.s3vectors import S3VectorsIndex
from memory.types import VectorRecord
from tests.support.otel import capture_telemetry

BUCKET = "memory-test-bucket"  # created by the s3vectors_client fixture


def test_put_query_delete_are_db_spans_named_after_the_index(s3vectors_client: Any) -> None:
    index = S3VectorsIndex(s3vectors_client, BUCKET, "memory-acme", 4)
    index.ensure()
    with capture_telemetry() as captured:
        index.put([VectorRecord(f"k{i}", [1.0, float(i), 0.0, 0.0], {"user_id": "u"}) for i in range(3)])
        hits = index.query([1.0, 0.0, 0.0, 0.0], 2, {"user_id": "u"})
        index.delete(["k0"])

    put, query, delete = (captured.one(f"{op} memory-acme") for op in ("PutVectors", "QueryVectors", "DeleteVectors"))
    for span, operation in ((put, "PutVectors"), (query, "QueryVectors"), (delete, "DeleteVectors")):
        assert span.attributes["db.system.name"] == "aws.s3vectors"
        assert span.attributes["db.operation.name"] == operation
        assert span.attributes["db.collection.name"] == "memory-acme"
        assert span.attributes["db.namespace"] == BUCKET
    assert put.attributes["memory.vectors"] == 3 and delete.attributes["memory.vectors"] == 1
    assert query.attributes["db.response.returned_rows"] == len(hits) == 2
    assert "memory.vectors" not in query.attributes
    # one PutVectors of several vectors is one operation with several rows, not a batch of
    # operations: the database conventions say db.operation.batch.size SHOULD NOT be set then
    assert not any("db.operation.batch.size" in s.attributes for s in (put, query, delete))
