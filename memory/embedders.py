"""Embedders: Amazon Nova 2 multimodal embeddings on Bedrock, and WordLlama offline."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from memory.aws import make_client, translate_error
from memory.errors import ConfigurationError, ValidationError
from memory.protocols import EmbeddingPurpose, Embedder

logger = logging.getLogger(__name__)

NOVA_MODEL_ID = "amazon.nova-2-multimodal-embeddings-v1:0"
NOVA_DIMENSIONS = (256, 384, 1024, 3072)
_NOVA_PURPOSE = {"index": "GENERIC_INDEX", "retrieval": "GENERIC_RETRIEVAL"}


def _normalise(matrix: np.ndarray) -> list[list[float]]:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float32))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).tolist()


def _check_purpose(purpose: str) -> str:
    if purpose not in _NOVA_PURPOSE:
        raise ValidationError(f"embedding purpose must be 'index' or 'retrieval', got {purpose!r}")
    return purpose


def check_dimensions(embedder: Embedder, index_dimension: int) -> None:
    """ConfigurationError unless the embedder produces vectors the index accepts."""
    if embedder.dimension != index_dimension:
        raise ConfigurationError(
            f"embedder {type(embedder).__name__} produces {embedder.dimension}-d vectors but the "
            f"index expects {index_dimension}-d; use an index created for this embedder"
        )


class BedrockEmbedder:
    """Amazon Nova 2 multimodal embeddings (text), one ``invoke_model`` call per text.

    ``purpose`` "index" maps to ``GENERIC_INDEX`` and "retrieval" to ``GENERIC_RETRIEVAL``.
    """

    def __init__(
        self,
        client: Any | None = None,
        *,
        region: str | None = None,
        model_id: str = NOVA_MODEL_ID,
        dimension: int = 1024,
    ) -> None:
        if dimension not in NOVA_DIMENSIONS:
            raise ConfigurationError(f"Nova embedding dimension must be one of {NOVA_DIMENSIONS}")
        if client is None:
            if not region:
                raise ConfigurationError("BedrockEmbedder needs a client or a region")
            client = make_client("bedrock-runtime", region=region)
        self._client = client
        self.model_id = model_id
        self.dimension = dimension

    def _request(self, text: str, purpose: str) -> str:
        return json.dumps(
            {
                "schemaVersion": "nova-multimodal-embed-v1",
                "taskType": "SINGLE_EMBEDDING",
                "singleEmbeddingParams": {
                    "embeddingPurpose": _NOVA_PURPOSE[purpose],
                    "embeddingDimension": self.dimension,
                    "text": {"truncationMode": "END", "value": text},
                },
            }
        )

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text."""
        _check_purpose(purpose)
        rows = []
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise ValidationError("cannot embed an empty text")
            try:
                response = self._client.invoke_model(
                    modelId=self.model_id,
                    body=self._request(text, purpose),
                    contentType="application/json",
                    accept="application/json",
                )
                payload = json.loads(response["body"].read())
            except (ClientError, BotoCoreError) as exc:
                raise translate_error(exc, f"bedrock invoke_model {self.model_id}") from exc
            try:
                vector = payload["embeddings"][0]["embedding"]
            except (KeyError, IndexError, TypeError) as exc:
                raise ConfigurationError(f"unexpected response from {self.model_id}") from exc
            if len(vector) != self.dimension:
                raise ConfigurationError(
                    f"{self.model_id} returned {len(vector)}-d vectors, expected {self.dimension}"
                )
            rows.append(vector)
        return _normalise(np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension))


_WORDLLAMA_LOCK = threading.Lock()
_WORDLLAMA: Any = None


def _wordllama() -> Any:
    """The process-wide WordLlama model, loaded once from the weights inside the wheel."""
    global _WORDLLAMA
    if _WORDLLAMA is None:
        with _WORDLLAMA_LOCK:
            if _WORDLLAMA is None:
                try:
                    import wordllama
                    from wordllama import WordLlama
                except ImportError as exc:
                    raise ConfigurationError(
                        "LocalEmbedder needs the 'wordllama' package (pip install '.[local]')"
                    ) from exc
                _WORDLLAMA = WordLlama.load(
                    cache_dir=Path(wordllama.__file__).parent, disable_download=True
                )
                logger.info("loaded WordLlama l2_supercat (256-d)")
    return _WORDLLAMA


class LocalEmbedder:
    """WordLlama ``l2_supercat`` 256-d embeddings, offline; the same vector for both purposes."""

    dimension = 256

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text (all zeros when no token is known to the model)."""
        _check_purpose(purpose)
        items = list(texts)
        if not items:
            return []
        if not all(isinstance(t, str) for t in items):
            raise ValidationError("texts must be strings")
        model = _wordllama()
        return _normalise(model.embed(items, norm=False, return_np=True))
