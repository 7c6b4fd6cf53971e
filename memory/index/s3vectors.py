"""S3VectorsIndex: the VectorIndex protocol on Amazon S3 Vectors (boto3 ``s3vectors``)."""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from memory import telemetry
from memory.index import limits
from memory.aws import error_code, translate_error
from memory.errors import BackendUnavailable, ConfigurationError, NotFound
from memory.index.filters import explicit_and, validate_filter
from memory.types import NON_FILTERABLE_KEYS, QueryHit, VectorRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")


def create_index_params(bucket: str, name: str, dimension: int) -> dict[str, Any]:
    """The ``create_index`` arguments of a memory index (float32, cosine, content not filterable)."""
    return {
        "vectorBucketName": bucket,
        "indexName": name,
        "dataType": "float32",
        "dimension": limits.validate_dimension(dimension),
        "distanceMetric": "cosine",
        "metadataConfiguration": {"nonFilterableMetadataKeys": list(NON_FILTERABLE_KEYS)},
    }


def missing_non_filterable_keys(index: Mapping[str, Any]) -> list[str]:
    """The keys ``create_index_params`` makes non-filterable that a GetIndex description says are
    filterable (all of them when it reports no metadata configuration: every key is filterable)."""
    config = index.get("metadataConfiguration") or {}
    declared = set(config.get("nonFilterableMetadataKeys") or ())
    return [key for key in NON_FILTERABLE_KEYS if key not in declared]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Upper bound of one float32 value in botocore's JSON (``-1.1754943508222875e-38, ``).
_FLOAT_JSON_CHARS = 25
#: Room left for the request's own fields (bucket, index, brackets).
_ENVELOPE_BYTES = 4096


def _request_size(vector: Mapping[str, Any]) -> int:
    """An upper bound of one PutVectors entry's JSON size (botocore escapes non-ASCII text)."""
    values = len(vector["data"]["float32"]) * _FLOAT_JSON_CHARS
    return values + len(json.dumps({"key": vector["key"], "metadata": vector["metadata"]})) + 32


def _put_batches(vectors: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """At most 500 vectors and 20 MiB of request payload per PutVectors."""
    batch: list[dict[str, Any]] = []
    size = _ENVELOPE_BYTES
    for vector in vectors:
        needed = _request_size(vector)
        if batch and (len(batch) == limits.MAX_PUT_BATCH or size + needed > limits.MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], _ENVELOPE_BYTES
        batch.append(vector)
        size += needed
    if batch:
        yield batch


class S3VectorsIndex:
    """One index of an S3 vector bucket.

    ``client`` is a boto3 ``s3vectors`` client, or a zero-argument callable returning one
    (e.g. ``lambda: tvm.client_for(tenant, "s3vectors")``, so refreshed tenant credentials
    are picked up). Errors surface as ``memory.errors`` after botocore's own retries.
    ``create_if_missing=False`` makes :meth:`ensure` only verify the index: tenant (TVM)
    credentials may read their own index but not create one; tenants are onboarded by the
    operations CLI.
    """

    def __init__(
        self, client: Any, bucket: str, name: str, dimension: int, *, create_if_missing: bool = True
    ) -> None:
        """Describe one index (no AWS call here).

        Args:
            client: An ``s3vectors`` client, or a zero-argument callable returning one.
            bucket: The vector bucket.
            name: The index name.
            dimension: Vector dimension (1-4096).
            create_if_missing: Whether :meth:`ensure` creates a missing index (else: NotFound).

        Raises:
            ValidationError: An invalid dimension, or a bucket or index name S3 Vectors refuses.
        """
        self._client_source = client
        self.bucket = limits.validate_bucket_name(bucket)
        self.name = limits.validate_index_name(name)
        self.dimension = limits.validate_dimension(dimension)
        self.create_if_missing = create_if_missing

    @property
    def client(self) -> Any:
        source = self._client_source
        return source() if callable(source) and not hasattr(source, "meta") else source

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate_error(exc, f"s3vectors {operation} {self.name}") from exc

    def _target(self) -> dict[str, str]:
        return {"vectorBucketName": self.bucket, "indexName": self.name}

    def ensure(self) -> None:
        """Create the index if missing; ConfigurationError if it exists with another dimension,
        distance metric or filterable memory text."""
        try:
            index = self._call("get_index", **self._target())["index"]
        except NotFound:
            if not self.create_if_missing:
                raise NotFound(
                    f"index {self.name!r} does not exist in bucket {self.bucket!r}; onboard the "
                    "tenant first (python -m scripts tenant onboard)"
                ) from None
            try:
                self._call("create_index", **create_index_params(self.bucket, self.name, self.dimension))
                logger.info("created s3vectors index %s", self.name)
                return
            except Exception as exc:  # a concurrent creator won the race
                if error_code(exc.__cause__ or exc) != "ConflictException":
                    raise
                index = self._call("get_index", **self._target())["index"]
        if int(index.get("dimension", self.dimension)) != self.dimension:
            raise ConfigurationError(
                f"index {self.name!r} exists with dimension {index['dimension']}, "
                f"but {self.dimension} was requested"
            )
        if index.get("distanceMetric", "cosine") != "cosine":  # scores are 1 - cosine distance
            raise ConfigurationError(
                f"index {self.name!r} uses the {index['distanceMetric']} distance; memory indexes are cosine"
            )
        filterable = missing_non_filterable_keys(index)
        if filterable:
            raise ConfigurationError(
                f"index {self.name!r} has filterable {', '.join(filterable)}: memory text would count "
                "against the 2 KB of filterable metadata; create the index with the library's parameters"
            )

    @telemetry.vector_operation("PutVectors", "aws.s3vectors", batch=True)
    def put(self, records: Sequence[VectorRecord]) -> None:
        """Insert or overwrite records, validated first, sent in batches of at most 500 vectors and
        20 MiB (wide vectors: fewer per batch); a batch refused as more than the index takes at once
        is halved."""
        vectors = [
            {
                "key": limits.validate_key(r.key),
                "data": {"float32": limits.validate_vector(r.vector, self.dimension).tolist()},
                "metadata": limits.validate_metadata(r.metadata),
            }
            for r in records
        ]
        for batch in _put_batches(vectors):
            self._put_batch(batch)

    def _put_batch(self, batch: Sequence[dict[str, Any]]) -> None:
        """One PutVectors; a batch the index cannot take at once (``ServiceUnavailableException``,
        "must not exceed the resource capacity" in the service model) is sent again as two halves."""
        try:
            self._call("put_vectors", **self._target(), vectors=list(batch))
        except BackendUnavailable as exc:
            if len(batch) == 1 or error_code(exc.__cause__ or exc) != "ServiceUnavailableException":
                raise
            half = len(batch) // 2
            logger.info("s3vectors PutVectors of %d vectors refused as too many at once; sending halves", len(batch))
            self._put_batch(batch[:half])
            self._put_batch(batch[half:])

    @telemetry.vector_operation("QueryVectors", "aws.s3vectors")
    def query(
        self, vector: Sequence[float], top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[QueryHit]:
        """Nearest records by cosine distance (ascending) matching ``filter``, every result page; a
        key on several pages (a vector rewritten between them) counts once, at its best distance."""
        request: dict[str, Any] = {
            **self._target(),
            "topK": limits.validate_top_k(top_k),
            "queryVector": {"float32": limits.validate_vector(vector, self.dimension).tolist()},
            "returnDistance": True,
            "returnMetadata": True,
        }
        checked = validate_filter(filter)
        if checked is not None:
            request["filter"] = explicit_and(checked)
        best: dict[str, QueryHit] = {}
        while True:  # results beyond the page size come in further pages (same parameters)
            response = self._call("query_vectors", **request)
            for v in response.get("vectors", []):
                hit = QueryHit(v["key"], float(v.get("distance", 0.0)), dict(v.get("metadata") or {}))
                seen = best.get(hit.key)
                if seen is None or hit.distance < seen.distance:  # a key on two pages: rewritten between them
                    best[hit.key] = hit
            token = response.get("nextToken")
            if not token or len(best) >= request["topK"]:
                return sorted(best.values(), key=lambda h: h.distance)[: request["topK"]]
            request["nextToken"] = token

    def get(self, keys: Sequence[str]) -> list[VectorRecord]:
        """Records for the keys that exist (in request order), in batches of 100."""
        wanted = list(dict.fromkeys(limits.validate_key(k) for k in keys))
        found: dict[str, VectorRecord] = {}
        for batch in _chunks(wanted, limits.MAX_GET_BATCH):
            response = self._call(
                "get_vectors", **self._target(), keys=list(batch), returnData=True, returnMetadata=True
            )
            for v in response.get("vectors", []):
                data = (v.get("data") or {}).get("float32", [])
                found[v["key"]] = VectorRecord(v["key"], list(data), dict(v.get("metadata") or {}))
        return [found[k] for k in wanted if k in found]

    @telemetry.vector_operation("DeleteVectors", "aws.s3vectors", batch=True)
    def delete(self, keys: Sequence[str]) -> None:
        """Delete the keys (missing keys are ignored), in batches of 500."""
        wanted = list(dict.fromkeys(limits.validate_key(k) for k in keys))
        for batch in _chunks(wanted, limits.MAX_DELETE_BATCH):
            self._call("delete_vectors", **self._target(), keys=list(batch))

    def list(self, *, return_data: bool = False) -> Iterator[VectorRecord]:
        """Every record with metadata, following ``nextToken`` across pages of 1,000, read one
        page at a time as the records are consumed (a tenant index can hold millions)."""
        for page in self._list_pages(returnMetadata=True, returnData=return_data):
            for v in page:
                data = (v.get("data") or {}).get("float32", []) if return_data else []
                yield VectorRecord(v["key"], list(data), dict(v.get("metadata") or {}))

    def keys(self) -> Iterator[str]:
        """Every key, listing keys only, one page at a time as they are consumed: no metadata or
        data is read (a page stops at 1,000 vectors or 1 MB read, so metadata means more pages;
        and listing it needs GetVectors too)."""
        for page in self._list_pages(returnMetadata=False, returnData=False):
            for vector in page:
                yield vector["key"]

    def count(self) -> int:
        """How many vectors the index holds (its :meth:`keys`, counted)."""
        return sum(1 for _ in self.keys())

    def _list_pages(self, **returned: bool) -> Iterator[list[dict[str, Any]]]:
        """The vectors of each ListVectors page, following ``nextToken``, one request per page consumed.

        A key already listed on an earlier page (a vector rewritten while the pages are read) is
        left out: each key comes once, as first listed (the keys seen are kept for that: some 100
        bytes each, ~100 MB while a million-vector index is listed).
        """
        token: str | None = None
        seen: set[str] = set()
        while True:
            request: dict[str, Any] = {**self._target(), "maxResults": limits.MAX_LIST_PAGE, **returned}
            if token:
                request["nextToken"] = token
            response = self._call("list_vectors", **request)
            page = []
            for vector in response.get("vectors", []):
                if vector["key"] not in seen:
                    seen.add(vector["key"])
                    page.append(vector)
            yield page
            token = response.get("nextToken")
            if not token:
                return

    def drop(self) -> None:
        """Delete the index (a missing index is ignored)."""
        try:
            self._call("delete_index", **self._target())
            logger.info("deleted s3vectors index %s", self.name)
        except NotFound:
            pass
