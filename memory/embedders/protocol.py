"""The embedder interface and the checks every embedder shares."""

from __future__ import annotations

from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from memory.errors import ConfigurationError, ValidationError

EmbeddingPurpose = Literal["index", "retrieval"]
#: The purposes an embedder accepts: stored documents ("index") and queries ("retrieval").
PURPOSES = ("index", "retrieval")


@runtime_checkable
class Embedder(Protocol):
    """Turns text into unit-length float vectors of a fixed dimension."""

    dimension: int

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One vector per text; ``purpose`` distinguishes stored documents from queries."""


def normalise_rows(matrix: np.ndarray) -> list[list[float]]:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).tolist()


def check_purpose(purpose: str) -> str:
    """``purpose`` itself if it is one of ``PURPOSES``, else ValidationError."""
    if purpose not in PURPOSES:
        raise ValidationError(f"embedding purpose must be 'index' or 'retrieval', got {purpose!r}")
    return purpose


def check_dimensions(embedder: Embedder, index_dimension: int) -> None:
    """ConfigurationError unless the embedder produces vectors the index accepts."""
    if embedder.dimension != index_dimension:
        raise ConfigurationError(
            f"embedder {type(embedder).__name__} produces {embedder.dimension}-d vectors but the "
            f"index expects {index_dimension}-d; use an index created for this embedder"
        )
