"""Property-based tests of the filter language (memory.index.filters) as LocalIndex evaluates it."""

from __future__ import annotations

import tempfile
from typing import Any
from unittest import mock

from hypothesis import example, given, settings
from hypothesis import strategies as st

from memory.index import local
from memory.index.filters import explicit_and, matches
from memory.index.local import LocalIndex
from memory.types import NON_FILTERABLE_KEYS, VectorRecord
from tests.support.s3vectors_double import evaluate

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)

FIELDS = ("user_id", "agent_name", "type", "stored_at_epoch", "tags")
SCALAR = st.one_of(
    st.sampled_from(["a", "b", ""]),
    st.integers(-2, 3),
    st.sampled_from([0.5, 2.0, -1.5, 2**53 + 1]),
    st.booleans(),
)
# Lists without numbers: what $gt/$gte/$lt/$lte do with a list is undocumented, and LocalIndex
# (never) and the double (any element) decide it differently; no stored memory has such a list.
VALUE = st.one_of(SCALAR, st.lists(st.one_of(st.sampled_from(["a", "b", ""]), st.booleans()), min_size=1, max_size=3))
METADATA = st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=4).map(lambda m: {**m, "content": "text"})
NUMBER = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, 2.0, -1.5, 2**53]))
CONDITION = st.one_of(
    SCALAR,
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$eq", "$ne"]), SCALAR),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$in", "$nin"]), st.lists(SCALAR, min_size=1, max_size=3)),
    st.builds(lambda v: {"$exists": v}, st.booleans()),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), NUMBER),
)
FILTER = st.recursive(
    st.dictionaries(st.sampled_from(FIELDS), CONDITION, min_size=1, max_size=2),
    lambda inner: st.one_of(
        st.builds(lambda op, members: {op: members}, st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda a, b: {**a, **b}, inner, st.dictionaries(st.sampled_from(FIELDS), CONDITION, max_size=1)),
    ),
    max_leaves=6,
)


def reference(filter: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """The S3 Vectors double's evaluator (written from the service's documentation, never from
    ``memory``), with LocalIndex's choice where the documentation is silent: ``$ne``/``$nin``
    match a record without the field."""
    return evaluate(filter, {k: v for k, v in metadata.items() if k not in NON_FILTERABLE_KEYS}, missing="included")


#: A write sequence over a few keys: metadata to put, or None to delete the key.
WRITES = st.lists(st.tuples(st.integers(0, 7), st.one_of(st.none(), METADATA, METADATA)), min_size=1, max_size=14)


@PROPERTY
@given(METADATA, FILTER)
def test_matches_agrees_with_the_reference(metadata: dict[str, Any], filter: dict[str, Any]) -> None:
    """``memory.index.filters.matches`` is the reference semantics on any metadata and filter."""
    assert matches(filter, metadata) == reference(filter, metadata)


def _single_entries(filter: dict[str, Any]) -> bool:
    return len(filter) == 1 and all(
        all(_single_entries(member) for member in value) for name, value in filter.items() if name in ("$and", "$or")
    )


@PROPERTY
@given(METADATA, FILTER)
def test_the_explicit_and_sent_to_s3_vectors_means_the_same(metadata: dict[str, Any], filter: dict[str, Any]) -> None:
    """``explicit_and`` (the form S3VectorsIndex sends) has one entry per mapping and matches
    exactly what the filter matches."""
    sent = explicit_and(filter)
    assert _single_entries(sent)
    assert reference(sent, metadata) == reference(filter, metadata)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(WRITES, st.lists(FILTER, min_size=1, max_size=4))
@example(  # a row added after the matrix grew, without the number column a filter compares
    [(0, {"stored_at_epoch": 1}), (1, {"stored_at_epoch": 1}), (2, {"stored_at_epoch": "a"})],
    [{"stored_at_epoch": {"$gte": 0}, "user_id": {"$exists": False}}],
)
@example([(0, {"stored_at_epoch": 1}), (1, {"tags": "a"}), (2, {"stored_at_epoch": "a"}), (2, None)],
         [{"tags": {"$exists": False}}])
def test_local_index_queries_agree_with_the_reference(writes: list[tuple[int, Any]], filters: list[dict[str, Any]]) -> None:
    """After any sequence of puts and deletes (queries in between, so its caches are used and
    invalidated, and its matrix grows from two rows), LocalIndex returns exactly the records
    the reference evaluator matches, and so does a second instance that loads the file."""
    with tempfile.TemporaryDirectory() as root, mock.patch.object(local, "_INITIAL_CAPACITY", 2):
        index = LocalIndex(root, "memory-props", 2)
        index.ensure()
        stored: dict[str, dict[str, Any]] = {}
        for step, (slot, metadata) in enumerate(writes):
            key = f"k{slot}"
            if metadata is None:
                index.delete([key])
                stored.pop(key, None)
            else:
                index.put([VectorRecord(key, [1.0, 0.5], metadata)])
                stored[key] = metadata
            for filter in filters[: 1 + step % len(filters)]:
                expected = sorted(k for k, m in stored.items() if reference(filter, m))
                assert sorted(h.key for h in index.query([1.0, 0.0], top_k=100, filter=filter)) == expected
        reloaded = LocalIndex(root, "memory-props", 2)
        for filter in filters:
            expected = sorted(k for k, m in stored.items() if reference(filter, m))
            assert sorted(h.key for h in reloaded.query([1.0, 0.0], top_k=100, filter=filter)) == expected
        reloaded.close()
        index.close()
