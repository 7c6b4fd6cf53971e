"""An S3 Vectors test double on moto, written from the service's documentation, not our code.

moto 5.2.5 mocks buckets, indexes and put/get/list/delete of vectors but has no QueryVectors
and enforces none of the per-request limits (botocore's parameter validation only checks
minimum sizes). ``install_s3vectors_double(monkeypatch)`` adds, for one test:

- a QueryVectors route with exact cosine distances and **its own filter evaluator** (this
  module never imports ``memory``: a filter bug in our code cannot agree with itself here);
- the documented limits, answered like the service with ``ValidationException`` (HTTP 400):
  500 vectors per PutVectors, 500 keys per DeleteVectors, 100 per GetVectors, ``topK``
  1-100, keys of 1-1,024 characters, at most 50 metadata keys, 40 KB of metadata per vector
  of which at most 2 KB filterable, at most 10 non-filterable keys per index (remembered
  from CreateIndex, which moto does not store, and reported by GetIndex), the query vector's
  dimension, request payloads
  of at most 20 MiB (PutVectors: 500 wide vectors are more);
- a request log (``double.requests``: operation and item count) to assert batching.

Sources (Amazon S3 user guide and API reference, read through the search tool):
``s3-vectors-metadata-filtering`` (operators, input types, array rule for ``$eq``, implicit
``$eq``), ``s3-vectors-limitations`` (the numbers above), ``API_S3VectorBuckets_*`` and the
botocore ``s3vectors`` model (``ValidationException`` with ``message``/``fieldList``; the
same maxima: vectors 500, keys 100/500, key length 1,024).

What the documentation does not say, decided here and nowhere else:
- ``$ne``/``$nin`` on a vector **without** the key: ``missing="excluded"`` (never matches,
  SQL-like) or ``missing="included"`` (matches, MongoDB-like). Tests that rely on filters run
  under both (the ``s3vectors_double`` fixture is parametrized), so our code must be right
  either way.
- ``$ne``/``$nin`` against a list value: true when no element equals (the negation of the
  documented ``$eq``/``$in`` rule); ``$gt``/``$gte``/``$lt``/``$lte`` against a list: true
  when some numeric element satisfies it.
- Several fields in one mapping are ANDed; several operators in one condition are ANDed.
- Non-filterable keys are invisible to filters (as if absent).
- Metadata size is measured as compact UTF-8 JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import pytest
from moto.core.responses import ActionResult
from moto.s3vectors import urls as s3vectors_urls
from moto.s3vectors.exceptions import ValidationError as MotoValidationError
from moto.s3vectors.responses import S3VectorsResponse

Missing = Literal["excluded", "included"]
MISSING_POLICIES: tuple[Missing, ...] = ("excluded", "included")

PUT_MAX_VECTORS = 500
DELETE_MAX_KEYS = 500
GET_MAX_KEYS = 100
TOP_K_MAX = 100
KEY_MAX_CHARS = 1024
METADATA_MAX_KEYS = 50
METADATA_MAX_BYTES = 40 * 1024
FILTERABLE_MAX_BYTES = 2 * 1024
NON_FILTERABLE_MAX_KEYS = 10
PAYLOAD_MAX_BYTES = 20 * 1024 * 1024


class InvalidFilter(ValueError):
    """The filter is not valid in the documented language (the service answers 400)."""


def _primitive(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _equal(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if _number(stored) and _number(wanted):
        return stored == wanted
    return isinstance(stored, str) and isinstance(wanted, str) and stored == wanted


_RANGES: dict[str, Callable[[float, float], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def evaluate(filter: Any, metadata: dict[str, Any], *, missing: Missing = "excluded") -> bool:
    """Whether ``metadata`` (filterable keys only) satisfies ``filter``; InvalidFilter if malformed.

    Every branch is evaluated (no short circuit), so a malformed part anywhere is reported.
    """
    if not isinstance(filter, dict) or not filter:
        raise InvalidFilter("a filter is a non-empty object")
    outcomes = []
    for name, condition in filter.items():
        if name in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise InvalidFilter(f"{name} takes a non-empty array of filters")
            parts = [evaluate(f, metadata, missing=missing) for f in condition]
            outcomes.append(all(parts) if name == "$and" else any(parts))
        elif not isinstance(name, str) or not name or name.startswith("$"):
            raise InvalidFilter(f"unsupported operator {name!r}")
        elif isinstance(condition, dict):
            if not condition:
                raise InvalidFilter(f"empty condition on {name!r}")
            outcomes.append(all([_condition(name, op, v, metadata, missing) for op, v in condition.items()]))
        else:
            outcomes.append(_condition(name, "$eq", condition, metadata, missing))
    return all(outcomes)


def _condition(name: str, op: str, operand: Any, metadata: dict[str, Any], missing: Missing) -> bool:
    present = name in metadata
    stored = metadata.get(name)
    values = stored if isinstance(stored, list) else [stored]
    if op in ("$eq", "$ne"):
        if not _primitive(operand):
            raise InvalidFilter(f"{op} takes a string, number or boolean")
        hit = present and any(_equal(v, operand) for v in values)
        if op == "$eq":
            return hit
        return (missing == "included") if not present else not hit
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand or not all(_primitive(o) for o in operand):
            raise InvalidFilter(f"{op} takes a non-empty array of primitives")
        hit = present and any(_equal(v, o) for v in values for o in operand)
        if op == "$in":
            return hit
        return (missing == "included") if not present else not hit
    if op in _RANGES:
        if not _number(operand):
            raise InvalidFilter(f"{op} takes a number")
        return present and any(_number(v) and _RANGES[op](v, operand) for v in values)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilter("$exists takes a boolean")
        return present is operand
    raise InvalidFilter(f"unsupported operator {op!r}")


def _json_size(items: dict[str, Any]) -> int:
    return len(json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


@dataclass
class S3VectorsDouble:
    """State of the double for one test: the missing-key policy, per-index settings, a request log."""

    missing: Missing = "excluded"
    requests: list[tuple[str, int]] = field(default_factory=list)
    non_filterable: dict[str, frozenset[str]] = field(default_factory=dict)  # index ARN -> keys

    def count(self, operation: str) -> list[int]:
        """Item counts of every logged request of ``operation`` (e.g. ``"DeleteVectors"``)."""
        return [n for op, n in self.requests if op == operation]

    def _index(self, response: S3VectorsResponse) -> Any:
        return response.s3vectors_backend.get_index(
            vector_bucket_name=response._get_param("vectorBucketName"),
            index_name=response._get_param("indexName"),
            index_arn=response._get_param("indexArn"),
        )

    def _filterable(self, index: Any, metadata: dict[str, Any]) -> dict[str, Any]:
        hidden = self.non_filterable.get(index.index_arn, frozenset())
        return {k: v for k, v in metadata.items() if k not in hidden}

    def _check_keys(self, keys: list[Any], limit: int, operation: str) -> None:
        if len(keys) > limit:
            raise MotoValidationError(f"{operation} accepts at most {limit} keys, got {len(keys)}")
        for key in keys:
            if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX_CHARS:
                raise MotoValidationError(f"vector keys have 1-{KEY_MAX_CHARS} characters")

    def create_index(self, original: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
        def handler(response: S3VectorsResponse) -> ActionResult:
            config = response._get_param("metadataConfiguration") or {}
            keys = config.get("nonFilterableMetadataKeys") or []
            if len(keys) > NON_FILTERABLE_MAX_KEYS:
                raise MotoValidationError(f"at most {NON_FILTERABLE_MAX_KEYS} non-filterable metadata keys")
            result = original(response)
            index = self._index(response)
            self.non_filterable[index.index_arn] = frozenset(keys)
            if config:  # GetIndex reports it, as the service does (moto keeps none)
                index.metadata_configuration = {"nonFilterableMetadataKeys": list(keys)}
            return result

        return handler

    def put_vectors(self, original: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
        def handler(response: S3VectorsResponse) -> ActionResult:
            vectors = response._get_param("vectors") or []
            self.requests.append(("PutVectors", len(vectors)))
            if len(response.raw_body or b"") > PAYLOAD_MAX_BYTES:
                raise MotoValidationError(f"request payload exceeds {PAYLOAD_MAX_BYTES} bytes")
            if len(vectors) > PUT_MAX_VECTORS:
                raise MotoValidationError(f"PutVectors accepts at most {PUT_MAX_VECTORS} vectors")
            self._check_keys([v.get("key") for v in vectors], PUT_MAX_VECTORS, "PutVectors")
            index = self._index(response)
            for vector in vectors:
                metadata = vector.get("metadata") or {}
                if len(metadata) > METADATA_MAX_KEYS:
                    raise MotoValidationError(f"at most {METADATA_MAX_KEYS} metadata keys per vector")
                if _json_size(metadata) > METADATA_MAX_BYTES:
                    raise MotoValidationError("metadata exceeds 40 KB")
                if _json_size(self._filterable(index, metadata)) > FILTERABLE_MAX_BYTES:
                    raise MotoValidationError("filterable metadata exceeds 2 KB")
            return original(response)

        return handler

    def keyed(self, operation: str, limit: int) -> Callable[[Callable[..., ActionResult]], Callable[..., ActionResult]]:
        """A wrapper for GetVectors/DeleteVectors: log the request, refuse more than ``limit`` keys."""

        def wrap(original: Callable[..., ActionResult]) -> Callable[..., ActionResult]:
            def handler(response: S3VectorsResponse) -> ActionResult:
                keys = response._get_param("keys") or []
                self.requests.append((operation, len(keys)))
                self._check_keys(keys, limit, operation)
                return original(response)

            return handler

        return wrap

    def query_vectors(self, response: S3VectorsResponse) -> ActionResult:
        """QueryVectors: nearest vectors by cosine distance among those matching the filter."""
        index = self._index(response)
        top_k = int(response._get_param("topK"))
        self.requests.append(("QueryVectors", top_k))
        if not 1 <= top_k <= TOP_K_MAX:
            raise MotoValidationError(f"topK must be between 1 and {TOP_K_MAX}")
        query = np.asarray(response._get_param("queryVector")["float32"], dtype=np.float64)
        if query.shape != (index.dimension,):
            raise MotoValidationError(f"query vector must have length {index.dimension}")
        flt = response._get_param("filter")
        if flt is not None:
            try:
                evaluate(flt, {}, missing=self.missing)  # every branch is checked, so a malformed
            except InvalidFilter as exc:  # filter is refused even on an empty index
                raise MotoValidationError(f"invalid filter: {exc}") from None
        scored = []
        # A snapshot: the service answers queries while other callers put and delete (the app's
        # background summaries do); list() copies the dict's values without releasing the GIL.
        for vector in list(index.vectors.values()):
            metadata = dict(vector.metadata or {})
            if flt is None or evaluate(flt, self._filterable(index, metadata), missing=self.missing):
                data = np.asarray(vector.data["float32"], dtype=np.float64)
                cosine = float(data @ query / (np.linalg.norm(data) * np.linalg.norm(query)))
                scored.append((1.0 - cosine, vector.key, metadata))
        scored.sort(key=lambda item: item[0])
        with_metadata = response._get_bool_param("returnMetadata", False)
        with_distance = response._get_bool_param("returnDistance", False)
        found: list[dict[str, Any]] = []
        for distance, key, metadata in scored[:top_k]:
            item: dict[str, Any] = {"key": key}
            if with_distance:
                item["distance"] = distance
            if with_metadata:
                item["metadata"] = metadata
            found.append(item)
        return ActionResult({"vectors": found, "distanceMetric": index.distance_metric})


def install_s3vectors_double(monkeypatch: pytest.MonkeyPatch, missing: Missing = "excluded") -> S3VectorsDouble:
    """Put the double in front of moto's S3 Vectors until the test ends (call before ``mock_aws``)."""
    double = S3VectorsDouble(missing=missing)
    wrappers = {
        "create_index": double.create_index,
        "put_vectors": double.put_vectors,
        "get_vectors": double.keyed("GetVectors", GET_MAX_KEYS),
        "delete_vectors": double.keyed("DeleteVectors", DELETE_MAX_KEYS),
    }
    for name, wrap in wrappers.items():
        monkeypatch.setattr(S3VectorsResponse, name, wrap(getattr(S3VectorsResponse, name)))
    monkeypatch.setattr(S3VectorsResponse, "query_vectors", lambda response: double.query_vectors(response), raising=False)
    monkeypatch.setitem(s3vectors_urls.url_paths, "{0}/QueryVectors$", S3VectorsResponse.dispatch)
    return double
