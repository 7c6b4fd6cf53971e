"""LocalIndex specifics: persistence across restarts, threads, several instances on one file."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from memory.errors import ConfigurationError, ValidationError
from memory.index.local import LocalIndex
from memory.types import VectorRecord


def test_survives_restart(tmp_path):
    first = LocalIndex(tmp_path, "memory-t1", 3)
    first.ensure()
    first.put([VectorRecord("a", [1, 2, 3], {"user_id": "u"}), VectorRecord("b", [3, 2, 1], {})])
    first.delete(["b"])
    first.close()

    reopened = LocalIndex(tmp_path, "memory-t1", 3)
    assert [r.key for r in reopened.list()] == ["a"]
    (hit,) = reopened.query([1, 2, 3], top_k=5)
    assert hit.key == "a" and hit.metadata == {"user_id": "u"}
    assert hit.distance == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigurationError):
        LocalIndex(tmp_path, "memory-t1", 4).ensure()
    with pytest.raises(ConfigurationError):
        LocalIndex(tmp_path, "memory-t1", 4).query([1, 0, 0, 0], top_k=1)


def test_one_file_per_index(tmp_path):
    for name in ("memory-a", "memory-b"):
        LocalIndex(tmp_path, name, 2).ensure()
    assert sorted(p.name for p in tmp_path.glob("*.sqlite3")) == [
        "memory-a.sqlite3",
        "memory-b.sqlite3",
    ]
    LocalIndex(tmp_path, "memory-a", 2).drop()
    assert [p.name for p in tmp_path.glob("*.sqlite3")] == ["memory-b.sqlite3"]


@pytest.mark.parametrize("name", ["ab", "Memory-A", "memory_a", "-memory", "memory/../x", "a" * 64])
def test_rejects_invalid_index_names(tmp_path, name):
    with pytest.raises(ValidationError):
        LocalIndex(tmp_path, name, 2)


def test_second_instance_sees_writes_of_the_first(tmp_path):
    writer, reader = LocalIndex(tmp_path, "memory-x", 2), LocalIndex(tmp_path, "memory-x", 2)
    writer.ensure()
    writer.put([VectorRecord("a", [1, 0], {})])
    assert [h.key for h in reader.query([1, 0], top_k=3)] == ["a"]
    writer.put([VectorRecord("b", [0, 1], {"n": 1})])
    # get reads only the keys the reader's cache holds: the cache must show the other's put
    assert [(r.key, r.metadata) for r in reader.get(["b", "a", "c"])] == [("b", {"n": 1}), ("a", {})]
    writer.delete(["a"])
    assert [h.key for h in reader.query([1, 0], top_k=3)] == ["b"]
    assert [r.key for r in reader.get(["a", "b"])] == ["b"]
    writer.drop()
    assert not (tmp_path / "memory-x.sqlite3").exists()


def test_concurrent_writers_and_readers(tmp_path):
    index = LocalIndex(tmp_path, "memory-threads", 8)
    index.ensure()
    rng = np.random.default_rng(1)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(50):
                vec = rng.standard_normal(8).tolist()
                index.put([VectorRecord(f"w{worker}-{i}", vec, {"user_id": f"u{worker}"})])
                index.query(vec, top_k=3, filter={"user_id": f"u{worker}"})
                if i % 10 == 0:
                    index.delete([f"w{worker}-{i}"])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert index.count() == 8 * 45
    restarted = LocalIndex(tmp_path, "memory-threads", 8)
    assert restarted.count() == 8 * 45
    assert len(restarted.query([1] * 8, top_k=100, filter={"user_id": "u3"})) == 45


def test_query_is_exact_against_numpy(tmp_path):
    rng = np.random.default_rng(7)
    data = rng.standard_normal((2000, 16)).astype(np.float32)
    index = LocalIndex(tmp_path, "memory-exact", 16)
    index.ensure()
    index.put([VectorRecord(f"k{i}", row.tolist(), {"i": i}) for i, row in enumerate(data)])
    query = rng.standard_normal(16)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    expected = np.argsort(-(unit @ (query / np.linalg.norm(query))))[:10]
    hits = index.query(query.tolist(), top_k=10)
    assert [h.key for h in hits] == [f"k{i}" for i in expected]


def test_filtered_queries_stay_exact_after_random_overwrites_and_deletes(tmp_path):
    """The in-memory inverted index and its per-filter row cache must agree with a plain scan
    after any write sequence (queries between writes, so cached rows are invalidated)."""
    from memory.index.filters import compile_filter

    filters = (
        {"user_id": "u1"},
        {"user_id": {"$in": ["u0", "u3"]}, "tags": "t2"},
        {"$and": [{"user_id": "u2"}, {"$or": [{"agent_name": "a1"}, {"agent_name": {"$exists": False}}]}]},
        {"tags": {"$eq": "all"}, "agent_name": {"$ne": "a0"}},
        {"$or": [{"agent_name": {"$exists": True}}, {"user_id": "u0"}], "tags": {"$in": ["t0", "t1"]}},
        {"$and": [{"tags": "all"}, {"stored_at_epoch": {"$gte": 5}}]},  # the retention filter
        {"stored_at_epoch": {"$lt": 7.5}, "tags": "all"},
        {"$or": [{"stored_at_epoch": {"$gt": 8}}, {"agent_name": {"$exists": False}}]},
    )
    # numbers (int, float), and values a numeric operator never matches (string, bool, list)
    numbers = (3, 5, 9, 7.5, 4.25, "9", True, [9])

    def check(indexes):
        everything = list(indexes[0].list())
        for flt in filters:
            expected = sorted(r.key for r in everything if compile_filter(flt)(r.metadata))
            for idx in indexes:
                assert sorted(h.key for h in idx.query([1, 1, 1, 1], top_k=100, filter=flt)) == expected

    rng = np.random.default_rng(3)
    index = LocalIndex(tmp_path, "memory-random", 4)
    index.ensure()
    for step in range(400):
        key = f"k{rng.integers(60)}"
        if rng.random() < 0.3:
            index.delete([key])
        else:
            meta = {"user_id": f"u{rng.integers(4)}", "tags": [f"t{rng.integers(3)}", "all"]}
            if rng.random() < 0.5:
                meta["agent_name"] = f"a{rng.integers(2)}"
            if rng.random() < 0.8:
                meta["stored_at_epoch"] = numbers[rng.integers(len(numbers))]
            index.put([VectorRecord(key, (rng.random(4) + 0.01).tolist(), meta)])
        if step % 5 == 0:
            check([index])
    check([index, LocalIndex(tmp_path, "memory-random", 4)])


def test_filtered_query_sees_a_new_record_and_a_new_absent_field(tmp_path):
    """Rows matched by a filter are cached per filter; any write must invalidate them
    (and the index arrays of the postings and fields it touched)."""
    index = LocalIndex(tmp_path, "memory-cache", 2)
    index.ensure()
    visible = {"$and": [{"user_id": "u"}, {"$or": [{"agent_name": "a"}, {"agent_name": {"$exists": False}}]}]}
    index.put([VectorRecord("one", [1, 0], {"user_id": "u"})])
    assert [h.key for h in index.query([1, 0], top_k=5, filter=visible)] == ["one"]
    index.put([VectorRecord("two", [0, 1], {"user_id": "u", "agent_name": "a"})])
    assert sorted(h.key for h in index.query([1, 0], top_k=5, filter=visible)) == ["one", "two"]
    index.put([VectorRecord("one", [1, 0], {"user_id": "u", "agent_name": "b"})])
    assert [h.key for h in index.query([1, 0], top_k=5, filter=visible)] == ["two"]
    index.delete(["two"])
    assert index.query([1, 0], top_k=5, filter=visible) == []


def test_deleted_text_leaves_no_trace_in_the_database_or_wal_files(tmp_path):
    """Erasure on disk: secure_delete zeroes the freed cells and the WAL is checkpointed and
    truncated, so the bytes of the db, -wal and -shm files no longer contain the text."""
    idx = LocalIndex(tmp_path, "memory-erase", 3)
    idx.ensure()
    idx.put([
        VectorRecord("k1", [1.0, 0.0, 0.0], {"user_id": "alice", "content": "SECRET-aardvark-4321"}),
        VectorRecord("k2", [0.0, 1.0, 0.0], {"user_id": "bob", "content": "kept-platypus-9999"}),
    ])

    def on_disk() -> bytes:
        return b"".join(p.read_bytes() for p in sorted(tmp_path.iterdir()) if p.is_file())

    assert b"SECRET-aardvark-4321" in on_disk()
    idx.delete(["k1"])
    assert b"SECRET-aardvark-4321" not in on_disk() and b"alice" not in on_disk()
    assert b"kept-platypus-9999" in on_disk() and [r.key for r in idx.list()] == ["k2"]


def test_deleting_only_absent_keys_skips_the_checkpoint_and_a_mixed_delete_still_erases(tmp_path):
    """A conversation's first store deletes the unit keys it does not use (all absent): no row
    changes, so no WAL checkpoint (an fsync of the database file). A delete that removes a row
    still checkpoints, absent keys alongside or not."""
    idx = LocalIndex(tmp_path, "memory-absent", 3)
    idx.ensure()
    idx.put([VectorRecord("k1", [1.0, 0.0, 0.0], {"content": "SECRET-okapi-1234"})])
    wal = tmp_path / "memory-absent.sqlite3-wal"
    size = wal.stat().st_size
    assert size > 0
    idx.delete([f"absent-{n}" for n in range(400)])
    assert wal.stat().st_size == size and [r.key for r in idx.list()] == ["k1"]
    idx.delete(["absent-1", "k1"])
    assert wal.stat().st_size == 0 and idx.count() == 0
    assert all(b"SECRET-okapi-1234" not in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())


def test_numeric_filter_on_integers_beyond_float64_stays_exact(tmp_path):
    """2**53 and 2**53 + 1 are one float64: such a field is compared per row, exactly."""
    index = LocalIndex(tmp_path, "memory-bigint", 2)
    index.ensure()
    index.put([VectorRecord("low", [1, 0], {"n": 2**53}), VectorRecord("high", [0, 1], {"n": 2**53 + 1})])
    assert [h.key for h in index.query([1, 0], top_k=5, filter={"n": {"$gt": 2**53}})] == ["high"]
    assert [h.key for h in index.query([1, 0], top_k=5, filter={"n": {"$lte": 2**53}})] == ["low"]


def test_the_filter_cache_tracks_only_fields_a_filter_may_name(tmp_path):
    """``content`` and ``conversation_id`` are non-filterable (as in S3 Vectors, where a filter
    naming them is refused): the in-memory inverted index keeps no postings for their values, so
    a unit's text costs no index entry, and overwriting or deleting it leaves nothing behind."""
    index = LocalIndex(tmp_path, "memory-t1", 3)
    index.ensure()
    metadata = {"user_id": "u", "content": "I live in Porto.", "conversation_id": "c1"}
    index.put([VectorRecord("a", [1, 2, 3], metadata)])
    matrix = index._matrix
    assert set(matrix.inverted) == {("user_id", "u")} and set(matrix.fields) == {"user_id"}
    with pytest.raises(ValidationError, match="not filterable"):
        index.query([1, 2, 3], top_k=1, filter={"content": "I live in Porto."})
    index.put([VectorRecord("a", [1, 2, 3], {**metadata, "user_id": "v"})])
    assert set(matrix.inverted) == {("user_id", "v")}
    assert [h.key for h in index.query([1, 2, 3], top_k=1, filter={"user_id": "v"})] == ["a"]
    assert index.query([1, 2, 3], top_k=1, filter={"user_id": "u"}) == []
    index.delete(["a"])
    assert matrix.inverted == {} and all(not rows for rows in matrix.fields.values())
