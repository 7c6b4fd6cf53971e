"""Amazon Nova 2 multimodal embeddings on Bedrock."""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from memory import telemetry
from memory.aws import make_client, translate_error
from memory.embedders.protocol import EmbeddingPurpose, check_purpose, normalise_rows
from memory.errors import ConfigurationError, ValidationError

logger = logging.getLogger(__name__)

NOVA_MODEL_ID = "amazon.nova-2-multimodal-embeddings-v1:0"
NOVA_DIMENSIONS = (256, 384, 1024, 3072)
_NOVA_PURPOSE = {"index": "GENERIC_INDEX", "retrieval": "GENERIC_RETRIEVAL"}


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
        """Create the embedder (no AWS call here).

        Args:
            client: A ``bedrock-runtime`` client (default: a new one in ``region``).
            region: AWS region, required without ``client``.
            model_id: The Bedrock model id.
            dimension: Output dimension, one of 256, 384, 1024, 3072.

        Raises:
            ConfigurationError: An unsupported dimension, or neither client nor region.
        """
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

    @telemetry.embedding
    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text."""
        check_purpose(purpose)
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
        return normalise_rows(np.asarray(rows, dtype=np.float32).reshape(len(rows), self.dimension))
