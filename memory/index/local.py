"""LocalIndex: the embedded vector index — one SQLite file per index plus an in-memory NumPy matrix.

SQLite (stdlib) is the durable store; queries run on a cached, row-normalised float32 matrix
(exact cosine, ``np.argpartition`` for top-k). The cache is appended to / patched on this
instance's writes and reloaded when SQLite's ``data_version`` shows another connection wrote
(another instance or process). Filters, limits and errors are those of S3 Vectors.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Collection, Iterator, Mapping, Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from memory import telemetry
from memory.index import limits
from memory.errors import ConfigurationError, NotFound, ValidationError
from memory.index.filters import compile_filter, is_number
from memory.private_files import create_private_file, private_dir
from memory.types import NON_FILTERABLE_KEYS, QueryHit, VectorRecord

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_info (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    key TEXT PRIMARY KEY,
    vector BLOB NOT NULL,
    metadata TEXT NOT NULL
);
"""
#: Distinct filters whose matching rows a cache keeps between writes (cleared when full).
_FILTER_CACHE_SIZE = 1024
#: Rows the in-memory matrix holds before it first grows (it doubles when full).
_INITIAL_CAPACITY = 1024
# One BLAS thread for the query product: a 5,000 x 256 matrix-vector product takes well under
# 1 ms on one core, but multi-threaded OpenBLAS on a loaded host spins its threads for 15-35 ms.
# The limit is process-wide while it lasts, so limited products are serialised (threadpoolctl
# restores the previous count on exit; overlapping limits could otherwise leave it at 1).
_BLAS = ThreadpoolController()
_BLAS_LOCK = threading.Lock()


def _similarities(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``matrix @ query`` on one BLAS thread (same result, no thread wake-up under load)."""
    with _BLAS_LOCK, _BLAS.limit(limits=1, user_api="blas"):
        return matrix @ query


#: Numeric filter operators as vectorised comparisons (``memory.index.filters`` semantics).
_COMPARISONS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal,
}


def _exact_float(value: Any) -> bool:
    """A number that float64 holds exactly, so comparing it as float64 changes no result."""
    return is_number(value) and (isinstance(value, float) or abs(value) <= 2**53)


def _filterable(metadata: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The record's fields a filter may name (``content`` and ``conversation_id`` never can)."""
    return ((name, value) for name, value in metadata.items() if name not in NON_FILTERABLE_KEYS)


def _postings(metadata: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The (field, string value) pairs of a record that the inverted index tracks."""
    for name, value in _filterable(metadata):
        if isinstance(value, str):
            yield name, value
        elif isinstance(value, list):
            for item in set(v for v in value if isinstance(v, str)):
                yield name, item


class _Matrix:
    """Rows of unit vectors with keys, metadata and an inverted index of string values."""

    def __init__(self, dimension: int, capacity: int) -> None:
        self.data = np.empty((capacity, dimension), dtype=np.float32)
        self.keys: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.position: dict[str, int] = {}
        self.inverted: dict[tuple[str, str], set[int]] = {}
        self.fields: dict[str, set[int]] = {}  # metadata key -> rows that have it
        self._filtered: dict[str, np.ndarray] = {}  # filter (canonical JSON) -> its sorted rows
        self._arrays: dict[tuple[str, ...], np.ndarray] = {}  # posting / field -> its rows
        # field -> its numbers per row (NaN: none), one per row of ``data``, for $gt/$gte/$lt/$lte
        self.numbers: dict[str, np.ndarray] = {}
        self.inexact: set[str] = set()  # fields with a number float64 cannot hold exactly

    @property
    def size(self) -> int:
        return len(self.keys)

    def _set_number(self, row: int, name: str, value: float) -> None:
        if not _exact_float(value):
            self.inexact.add(name)
            return
        column = self.numbers.get(name)
        if column is None:
            column = self.numbers[name] = np.full(self.data.shape[0], np.nan)
        column[row] = value

    def _index(self, row: int, metadata: Mapping[str, Any]) -> None:
        self._filtered.clear()
        for posting in _postings(metadata):
            self.inverted.setdefault(posting, set()).add(row)
            self._arrays.pop(("=", *posting), None)
        for name, value in _filterable(metadata):
            self.fields.setdefault(name, set()).add(row)
            self._arrays.pop(("exists", name), None)
            if is_number(value):
                self._set_number(row, name, value)

    def _unindex(self, row: int, metadata: Mapping[str, Any]) -> None:
        self._filtered.clear()
        for name, _ in _filterable(metadata):
            self._arrays.pop(("exists", name), None)
            column = self.numbers.get(name)
            if column is not None:
                column[row] = np.nan
            rows = self.fields.get(name)
            if rows is not None:
                rows.discard(row)
        for posting in _postings(metadata):
            self._arrays.pop(("=", *posting), None)
            rows = self.inverted.get(posting)
            if rows is not None:
                rows.discard(row)
                if not rows:
                    del self.inverted[posting]

    def upsert(self, key: str, unit: np.ndarray, metadata: dict[str, Any]) -> None:
        row = self.position.get(key)
        if row is None:
            row = self.size
            if row == self.data.shape[0]:
                grown = np.empty((row * 2, self.data.shape[1]), dtype=np.float32)
                grown[:row] = self.data[:row]
                self.data = grown
                # every number column stays as long as the matrix (NaN: no number in that row)
                for name, column in self.numbers.items():
                    self.numbers[name] = np.concatenate([column, np.full(row, np.nan)])
            self.keys.append(key)
            self.metadata.append(metadata)
            self.position[key] = row
        else:
            self._unindex(row, self.metadata[row])
            self.metadata[row] = metadata
        self._index(row, metadata)
        self.data[row] = unit

    def remove(self, key: str) -> None:
        row = self.position.pop(key, None)
        if row is None:
            return
        self._unindex(row, self.metadata[row])
        last = self.size - 1
        if row != last:
            moved = self.keys[last]
            self._unindex(last, self.metadata[last])
            self.data[row] = self.data[last]
            self.keys[row] = moved
            self.metadata[row] = self.metadata[last]
            self.position[moved] = row
            self._index(row, self.metadata[row])
        self.keys.pop()
        self.metadata.pop()

    def matching_rows(
        self, filter: Mapping[str, Any], predicate: Callable[[Mapping[str, Any]], bool]
    ) -> np.ndarray:
        """The sorted rows matching ``filter`` (``predicate`` is its compiled form), cached per
        filter until the next write: a user's visibility filter repeats on every turn."""
        cache_key = json.dumps(filter, sort_keys=True)
        rows = self._filtered.get(cache_key)
        if rows is not None:
            return rows
        mask = self.exact_mask(filter)
        if mask is not None:
            rows = np.flatnonzero(mask)
        else:
            pool, exact = self.candidates(filter)
            if exact and pool is not None:
                rows = np.sort(np.fromiter(pool, dtype=np.intp, count=len(pool)))
            else:
                scan = range(self.size) if pool is None else sorted(pool)
                rows = np.fromiter((i for i in scan if predicate(self.metadata[i])), dtype=np.intp)
        if len(self._filtered) >= _FILTER_CACHE_SIZE:
            self._filtered.clear()
        self._filtered[cache_key] = rows
        return rows

    def exact_mask(self, filter: Mapping[str, Any]) -> np.ndarray | None:
        """A boolean mask of the rows matching ``filter`` from the inverted index alone, or None
        when the filter uses anything but string ``$eq``/``$in``, ``$exists``, ``$and`` and
        ``$or`` (e.g. the agent rule's ``agent_name == X OR agent_name absent``)."""
        result: np.ndarray | None = None
        for name, condition in filter.items():
            if name in ("$and", "$or"):
                parts = [self.exact_mask(member) for member in condition]
                if any(part is None for part in parts):
                    return None
                combine = np.logical_and if name == "$and" else np.logical_or
                mask = combine.reduce(parts)
            else:
                mask = self._condition_mask(name, condition)
                if mask is None:
                    return None
            result = mask if result is None else result & mask
        return result

    def _condition_mask(self, name: str, condition: Any) -> np.ndarray | None:
        if isinstance(condition, str):
            return self._mask(("=", name, condition), self.inverted.get((name, condition), ()))
        if not isinstance(condition, Mapping) or len(condition) != 1:
            return None
        ((op, operand),) = condition.items()
        if op == "$eq" and isinstance(operand, str):
            return self._mask(("=", name, operand), self.inverted.get((name, operand), ()))
        if op == "$in" and all(isinstance(v, str) for v in operand):
            mask = np.zeros(self.size, dtype=bool)
            for value in operand:
                mask |= self._mask(("=", name, value), self.inverted.get((name, value), ()))
            return mask
        if op == "$exists" and isinstance(operand, bool):
            present = self._mask(("exists", name), self.fields.get(name, ()))
            return present if operand else ~present
        if op in _COMPARISONS and _exact_float(operand):
            if name in self.inexact:
                return None
            column = self.numbers.get(name)
            if column is None:
                return np.zeros(self.size, dtype=bool)
            with np.errstate(invalid="ignore"):  # NaN (no number in that row) matches nothing
                return _COMPARISONS[op](column[: self.size], float(operand))
        return None

    def _mask(self, cache_key: tuple[str, ...], rows: Collection[int]) -> np.ndarray:
        """A boolean mask of ``rows``; their index array is kept until a write touches them."""
        array = self._arrays.get(cache_key)
        if array is None:
            array = np.fromiter(rows, dtype=np.intp, count=len(rows))
            if len(self._arrays) >= _FILTER_CACHE_SIZE:
                self._arrays.clear()
            self._arrays[cache_key] = array
        mask = np.zeros(self.size, dtype=bool)
        mask[array] = True
        return mask

    def candidates(self, filter: Mapping[str, Any]) -> tuple[set[int] | None, bool]:
        """Rows that can match ``filter`` by its required string equalities (None: every row),
        and whether those equalities are the whole filter (no per-row check needed)."""
        required, exact = _required_equalities(filter)
        if not required:
            return None, False
        result: set[int] | None = None
        for name, values in sorted(required, key=lambda r: len(r[1])):
            rows: set[int] = set()
            for value in values:
                rows |= self.inverted.get((name, value), set())
            result = rows if result is None else result & rows
            if not result:
                return set(), True
        return result, exact


def _required_equalities(
    filter: Mapping[str, Any],
) -> tuple[list[tuple[str, tuple[str, ...]]], bool]:
    """String ``$eq``/``$in`` conditions every match must satisfy (top level and ``$and``),
    and whether the filter consists of nothing else."""
    found: list[tuple[str, tuple[str, ...]]] = []
    exact = True
    for name, condition in filter.items():
        if name == "$and":
            for member in condition:
                more, member_exact = _required_equalities(member)
                found.extend(more)
                exact = exact and member_exact
        elif name.startswith("$"):
            exact = False
        elif isinstance(condition, str):
            found.append((name, (condition,)))
        elif isinstance(condition, Mapping) and len(condition) == 1:
            ((op, operand),) = condition.items()
            if op == "$eq" and isinstance(operand, str):
                found.append((name, (operand,)))
            elif op == "$in" and all(isinstance(v, str) for v in operand):
                found.append((name, tuple(operand)))
            else:
                exact = False
        else:
            exact = False
    return found, exact


def _unit(values: Sequence[float]) -> np.ndarray:
    vec = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValidationError("vector must have a finite, non-zero norm")
    return vec / norm


def stored_dimension(root_dir: str | Path, name: str) -> int | None:
    """The dimension of the index file ``<root_dir>/<name>.sqlite3``, None if there is none."""
    path = Path(root_dir) / f"{limits.validate_index_name(name)}.sqlite3"
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM index_info WHERE name = 'dimension'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return int(row[0]) if row else None


class LocalIndex:
    """A persistent cosine index under ``root_dir`` (file ``<name>.sqlite3``), thread-safe.

    Call :meth:`ensure` once to create it; every other operation on a missing index raises
    NotFound, like S3 Vectors. Deletion leaves no deleted text on disk: ``secure_delete``
    zeroes freed content and each delete checkpoints and truncates the WAL.
    """

    def __init__(self, root_dir: str | Path, name: str, dimension: int) -> None:
        """Open (not create) the index.

        Args:
            root_dir: Directory of the index files.
            name: Index name (S3 Vectors' rules: 3-63 of ``[a-z0-9.-]``).
            dimension: Vector dimension (1-4096).

        Raises:
            ValidationError: An invalid name or dimension.
        """
        self.name = limits.validate_index_name(name)
        self.dimension = limits.validate_dimension(dimension)
        self.path = Path(root_dir) / f"{name}.sqlite3"
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._matrix: _Matrix | None = None
        self._data_version = -1

    # -- connection and cache -------------------------------------------------------------

    def _connect(self, create: bool) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if not create and not self.path.exists():
            raise NotFound(f"index {self.name!r} does not exist")
        private_dir(self.path.parent)
        create_private_file(self.path)  # 0600 before SQLite creates it; -wal/-shm inherit the mode
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")  # deleted rows are overwritten with zeros
        conn.executescript(_SCHEMA)
        self._conn = conn
        return conn

    def _stored_dimension(self, conn: sqlite3.Connection) -> int | None:
        row = conn.execute("SELECT value FROM index_info WHERE name = 'dimension'").fetchone()
        return int(row[0]) if row else None

    def _open(self) -> sqlite3.Connection:
        """The connection of an existing index, with a cache that reflects every commit."""
        conn = self._connect(create=False)
        if not self.path.exists():  # dropped by another instance
            self._close()
            raise NotFound(f"index {self.name!r} does not exist")
        self._refresh(conn)
        return conn

    def _refresh(self, conn: sqlite3.Connection) -> None:
        """Reload the cache if another connection committed since it was built."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if self._matrix is None or version != self._data_version:
            self._load(conn)
            self._data_version = version

    def _load(self, conn: sqlite3.Connection) -> None:
        stored = self._stored_dimension(conn)
        if stored is None:
            raise NotFound(f"index {self.name!r} does not exist")
        if stored != self.dimension:
            raise ConfigurationError(
                f"index {self.name!r} has dimension {stored}, expected {self.dimension}"
            )
        rows = conn.execute("SELECT key, vector, metadata FROM vectors").fetchall()
        matrix = _Matrix(self.dimension, capacity=max(_INITIAL_CAPACITY, len(rows)))
        if rows:
            stacked = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
            stacked = stacked.reshape(len(rows), self.dimension)
            matrix.data[: len(rows)] = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
            matrix.keys = [r[0] for r in rows]
            matrix.metadata = [json.loads(r[2]) for r in rows]
            matrix.position = {key: i for i, key in enumerate(matrix.keys)}
            for row, metadata in enumerate(matrix.metadata):
                matrix._index(row, metadata)
        self._matrix = matrix
        logger.debug("loaded local index %s (%d vectors)", self.name, matrix.size)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._matrix = None
        self._data_version = -1

    def close(self) -> None:
        """Release the SQLite connection (the index stays on disk)."""
        with self._lock:
            self._close()

    # -- VectorIndex ----------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the index if missing; ConfigurationError if it exists with another dimension."""
        with self._lock:
            conn = self._connect(create=True)
            conn.execute("BEGIN IMMEDIATE")
            try:
                stored = self._stored_dimension(conn)
                if stored is None:
                    conn.execute(
                        "INSERT INTO index_info (name, value) VALUES ('dimension', ?)",
                        (str(self.dimension),),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if stored is not None and stored != self.dimension:
                raise ConfigurationError(
                    f"index {self.name!r} exists with dimension {stored}, "
                    f"but {self.dimension} was requested"
                )

    @telemetry.vector_operation("PutVectors", "sqlite", batch=True)
    def put(self, records: Sequence[VectorRecord]) -> None:
        """Insert or overwrite records (validated all-or-nothing against S3 Vectors' limits)."""
        prepared = []
        for record in records:
            key = limits.validate_key(record.key)
            values = limits.validate_vector(record.vector, self.dimension)
            metadata = limits.validate_metadata(record.metadata)
            prepared.append((key, values, metadata))
        if not prepared:
            return
        with self._lock:
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, vector, metadata) VALUES (?, ?, ?)",
                    [(k, v.tobytes(), json.dumps(m)) for k, v, m in prepared],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            assert self._matrix is not None
            stacked = np.stack([v for _, v, _ in prepared])
            units = stacked / np.linalg.norm(stacked, axis=1, keepdims=True)
            for (key, _, metadata), unit in zip(prepared, units):
                self._matrix.upsert(key, unit, metadata)

    @telemetry.vector_operation("QueryVectors", "sqlite")
    def query(
        self, vector: Sequence[float], top_k: int, filter: Mapping[str, Any] | None = None
    ) -> list[QueryHit]:
        """The ``top_k`` nearest records by cosine distance (ascending) that match ``filter``."""
        top_k = limits.validate_top_k(top_k)
        query = _unit(limits.validate_vector(vector, self.dimension))
        predicate = compile_filter(filter) if filter is not None else None
        with self._lock:
            self._open()
            matrix = self._matrix
            assert matrix is not None
            if predicate is None:
                rows = None
                similarity = _similarities(matrix.data[: matrix.size], query)
            else:
                assert filter is not None
                rows = matrix.matching_rows(filter, predicate)
                if rows.shape[0] * 4 >= matrix.size:  # most rows match: one contiguous product, no copy
                    similarity = _similarities(matrix.data[: matrix.size], query)[rows]
                else:
                    similarity = _similarities(matrix.data[rows], query)
            if similarity.shape[0] == 0:
                return []
            k = min(top_k, similarity.shape[0])
            best = np.argpartition(-similarity, k - 1)[:k] if k < similarity.shape[0] else None
            best = np.arange(similarity.shape[0]) if best is None else best
            best = best[np.argsort(-similarity[best], kind="stable")]
            chosen = (best if rows is None else rows[best]).tolist()
            distances = np.maximum(0.0, 1.0 - similarity[best].astype(np.float64)).tolist()
            keys, metadata = matrix.keys, matrix.metadata
            return [QueryHit(keys[r], d, dict(metadata[r])) for r, d in zip(chosen, distances)]

    def get(self, keys: Sequence[str]) -> list[VectorRecord]:
        """Records (with vector and metadata) for the keys that exist, in request order."""
        wanted = [limits.validate_key(k) for k in keys]
        if not wanted:
            return []
        with self._lock:
            conn = self._open()
            assert self._matrix is not None
            # only keys the cache holds (it reflects every commit): a conversation's store asks
            # for all ~440 keys its units could have, of which a first store has none
            present = [k for k in dict.fromkeys(wanted) if k in self._matrix.position]
            found: dict[str, VectorRecord] = {}
            for start in range(0, len(present), 500):
                chunk = present[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, blob, meta in conn.execute(
                    f"SELECT key, vector, metadata FROM vectors WHERE key IN ({marks})", chunk
                ):
                    vector = np.frombuffer(blob, dtype=np.float32).tolist()
                    found[key] = VectorRecord(key, vector, json.loads(meta))
        return [found[k] for k in dict.fromkeys(wanted) if k in found]

    @telemetry.vector_operation("DeleteVectors", "sqlite", batch=True)
    def delete(self, keys: Sequence[str]) -> None:
        """Delete the keys; missing keys are ignored."""
        wanted = [limits.validate_key(k) for k in keys]
        if not wanted:
            return
        with self._lock:
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE")  # no other writer until COMMIT: the cache stays exact
            try:
                self._refresh(conn)
                assert self._matrix is not None
                present = [k for k in dict.fromkeys(wanted) if k in self._matrix.position]
                conn.executemany("DELETE FROM vectors WHERE key = ?", [(k,) for k in present])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if not present:
                return  # e.g. a conversation's first store: its unused unit keys were never there
            # Copy the zeroed pages into the database file and empty the WAL, so no deleted
            # text stays readable on disk (the WAL keeps old page images until a checkpoint).
            # Only when a row was deleted: a checkpoint fsyncs the database file.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for key in present:
                self._matrix.remove(key)

    def list(self, *, return_data: bool = False) -> Iterator[VectorRecord]:
        """Every record with metadata, ordered by key (vectors only with ``return_data``)."""
        with self._lock:
            conn = self._open()
            column = "vector" if return_data else "NULL"
            rows = conn.execute(
                f"SELECT key, {column}, metadata FROM vectors ORDER BY key"
            ).fetchall()
        return iter(
            [
                VectorRecord(
                    key,
                    np.frombuffer(blob, dtype=np.float32).tolist() if return_data else [],
                    json.loads(meta),
                )
                for key, blob, meta in rows
            ]
        )

    def keys(self) -> Iterator[str]:
        """Every key, ordered (no metadata or vector read)."""
        with self._lock:
            conn = self._open()
            rows = conn.execute("SELECT key FROM vectors ORDER BY key").fetchall()
        return iter([key for (key,) in rows])

    def count(self) -> int:
        """How many vectors the index holds."""
        with self._lock:
            self._open()
            assert self._matrix is not None
            return self._matrix.size

    def drop(self) -> None:
        """Delete the index file (a missing index is ignored)."""
        with self._lock:
            self._close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
