"""The vector index interface every backend implements (S3 Vectors' semantics)."""

from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

from memory.types import QueryHit, VectorRecord


@runtime_checkable
class VectorIndex(Protocol):
    """A cosine vector index with S3 Vectors' semantics (filters, limits, errors)."""

    name: str
    dimension: int

    def ensure(self) -> None:
        """Create the index if missing; raise ConfigurationError if it exists with another dimension."""

    def put(self, records: Sequence[VectorRecord]) -> None:
        """Insert or overwrite records (batched within the service limit)."""

    def query(
        self, vector: Sequence[float], top_k: int, filter: dict[str, Any] | None = None
    ) -> list[QueryHit]:
        """Nearest records by cosine distance, ascending, filtered by metadata."""

    def get(self, keys: Sequence[str]) -> list[VectorRecord]:
        """Records for the keys that exist (missing keys are skipped)."""

    def delete(self, keys: Sequence[str]) -> None:
        """Delete the keys (missing keys are ignored)."""

    def list(self) -> Iterator[VectorRecord]:
        """Every record (all pages), with metadata."""

    def keys(self) -> Iterator[str]:
        """Every key (all pages), without metadata: cheaper than :meth:`list` where keys suffice."""

    def drop(self) -> None:
        """Delete the whole index (missing index is ignored)."""
