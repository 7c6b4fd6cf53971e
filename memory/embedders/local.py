"""WordLlama embeddings offline: the 256-d weights ship inside the ``wordllama`` wheel."""

from __future__ import annotations

import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from memory import telemetry
from memory.embedders.pieces import PieceTokenizer
from memory.embedders.protocol import EmbeddingPurpose, check_purpose, normalise_rows
from memory.errors import ConfigurationError, ValidationError

logger = logging.getLogger(__name__)


_WORDLLAMA_LOCK = threading.Lock()
_WORDLLAMA: Any = None
_TOKEN_IDS: PieceTokenizer | None = None  # WordLlama's tokenizer without its batch padding


def _wordllama() -> Any:
    """The process-wide WordLlama model, loaded once from the weights inside the wheel."""
    global _WORDLLAMA
    if _WORDLLAMA is None:
        with _WORDLLAMA_LOCK:
            if _WORDLLAMA is None:
                # Texts here are short and few: the tokenizer's thread pool costs more CPU than it
                # saves (12 excerpts: 1.23 vs 0.89 ms CPU, same wall time), and its spinning threads
                # take the core the app's requests need. An explicit setting is respected.
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
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


def _token_ids() -> PieceTokenizer:
    """Token ids by a copy of WordLlama's tokenizer that does not pad (the model's own stays as
    it is), each word tokenized once per process (``memory.embedders.pieces``)."""
    global _TOKEN_IDS
    model = _wordllama()
    if _TOKEN_IDS is None:
        with _WORDLLAMA_LOCK:
            if _TOKEN_IDS is None:
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_str(model.tokenizer.to_str())
                tokenizer.no_padding()
                _TOKEN_IDS = PieceTokenizer(tokenizer)
    return _TOKEN_IDS


def mean_token_vectors(model: Any, token_ids: PieceTokenizer, texts: list[str]) -> np.ndarray:
    """What ``model.embed(texts, norm=False)`` computes: per text, the mean of its tokens'
    vectors (zeros when it has none), without padding every text to the batch's longest.

    WordLlama pads a batch and averages under the attention mask, so each short excerpt of a
    conversation was expanded to the length of its summary: for a 16-turn conversation's 48
    units that was 12.5 ms of CPU instead of 4.2 ms (``tests/unit/memory/test_embedders_keys.py``
    checks the vectors agree).
    """
    per_text = token_ids(texts)
    counts = [len(t) for t in per_text]
    ids = np.fromiter(itertools.chain.from_iterable(per_text), dtype=np.intp, count=sum(counts))
    table = model.embedding
    np.clip(ids, 0, table.shape[0] - 1, out=ids)
    vectors = table[ids]
    ends = list(itertools.accumulate(counts))
    sums = np.stack([vectors[end - count : end].sum(axis=0) for end, count in zip(ends, counts)])
    return sums / np.maximum(np.asarray(counts, dtype=np.float32), 1.0)[:, np.newaxis]


class LocalEmbedder:
    """WordLlama ``l2_supercat`` 256-d embeddings, offline; the same vector for both purposes."""

    dimension = 256
    #: Relevance floor (cosine similarity). WordLlama's scale: in bench/bench_recall.py the best
    #: evidence unit scores 0.18 at the 5th percentile and 0.38 at the median, while small talk
    #: ("hi", "thanks, bye") reaches 0.19-0.25 against the same memories; 0.15 drops fewer than
    #: 5% of relevant memories (the previous fixed 0.2 dropped about 8%).
    min_score = 0.15

    @telemetry.embedding
    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text (all zeros when no token is known to the model)."""
        check_purpose(purpose)
        items = list(texts)
        if not items:
            return []
        if not all(isinstance(t, str) for t in items):
            raise ValidationError("texts must be strings")
        return normalise_rows(mean_token_vectors(_wordllama(), _token_ids(), items))
