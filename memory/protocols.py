"""The interfaces the memory library is built from: vector indexes, embedders and stores."""

from __future__ import annotations

from typing import Any, Iterator, Literal, Protocol, Sequence, runtime_checkable

from memory.models import Memory, QueryHit, Scope, VectorRecord

EmbeddingPurpose = Literal["index", "retrieval"]


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

    def drop(self) -> None:
        """Delete the whole index (missing index is ignored)."""


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float vectors of a fixed dimension."""

    dimension: int

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One vector per text; ``purpose`` distinguishes stored documents from queries."""


@runtime_checkable
class MemoryStoreProtocol(Protocol):
    """What the plugin, the recall tool and the app need from a memory store."""

    def store(
        self,
        scope: Scope,
        content: str,
        *,
        conversation_id: str | None = None,
        memory_type: str = "summary",
        key: str | None = None,
    ) -> Memory:
        """Embed and store one memory (idempotent when ``key`` is given)."""

    def retrieve(
        self,
        scope: Scope,
        query: str,
        *,
        top_k: int = 5,
        min_score: float | None = None,
    ) -> list[Memory]:
        """Most similar memories for the scope, best first, with cosine similarity >= min_score."""

    def list(self, scope: Scope) -> list[Memory]:
        """Every memory of the scope."""

    def forget(self, scope: Scope, *, conversation_id: str | None = None) -> int:
        """Delete a user's memories (optionally one conversation's); returns how many."""

    def forget_tenant(self, tenant_id: str | None = None) -> int:
        """Delete every memory of a tenant (its whole index); returns how many."""
