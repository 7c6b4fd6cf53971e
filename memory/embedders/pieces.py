"""Token ids of WordLlama's tokenizer with each word tokenized once per process.

WordLlama's tokenizer (Llama 2's SentencePiece BPE in ``tokenizers`` form) has no
pre-tokenizer: its normalizer prepends the word mark ``▁`` and turns every space into one, then
BPE runs over the whole text. No token of its vocabulary holds a ``▁`` after another character,
so no merge crosses the start of a run of marks: the text's tokens are the concatenation of the
tokens of its pieces (a run of marks and the word after it), and a piece's tokens can be cached.
A conversation's units repeat its sentences (summary, excerpts, statements) and users repeat
their words, so most pieces are cache hits: tokenizing a benchmark conversation's 40 units takes
1.1 ms of CPU instead of 4.8 ms (``tests/unit/memory/test_embedders_keys.py`` checks the ids
agree with the tokenizer's own).

A tokenizer of another shape (a future ``wordllama`` release) is used as it is, and texts
holding a special token (``<s>``), which the tokenizer matches before normalizing, go through it
whole.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any, Sequence

MARK = "\u2581"  # SentencePiece's word mark
_PIECE = re.compile(f"{MARK}+[^{MARK}]*")  # a run of marks and the word after it
_NORMALIZERS = [
    {"type": "Prepend", "prepend": MARK},
    {"type": "Replace", "pattern": {"String": " "}, "content": MARK},
]
CACHED_PIECES = 1 << 16
CACHED_PIECE_CHARS = 64  # longer pieces (a URL, an encoded blob) are tokenized every time


class PieceTokenizer:
    """``tokenizer``'s ids of each text (no special tokens, no padding), piece by piece."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        config = json.loads(tokenizer.to_str())
        self.by_piece = splits_at_marks(config)
        self.special = tuple(t["content"] for t in config.get("added_tokens", []))
        self._cached_ids = functools.lru_cache(maxsize=CACHED_PIECES)(self._tokenize_piece)

    def __call__(self, texts: Sequence[str]) -> list[Sequence[int]]:
        if not self.by_piece:
            return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]
        return [self._ids(text) for text in texts]

    def _ids(self, text: str) -> Sequence[int]:
        if not text:
            return ()  # the normalizer prepends nothing to an empty text
        if any(token in text for token in self.special):
            return self.tokenizer.encode(text, add_special_tokens=False).ids
        pieces = _PIECE.findall(MARK + text.replace(" ", MARK))
        return list(itertools.chain.from_iterable(map(self._piece_ids, pieces)))

    def _piece_ids(self, piece: str) -> tuple[int, ...]:
        if len(piece) > CACHED_PIECE_CHARS:  # the cache is bounded in entries: keep them short
            return self._tokenize_piece(piece)
        return self._cached_ids(piece)

    def _tokenize_piece(self, piece: str) -> tuple[int, ...]:
        return tuple(token.id for token in self.tokenizer.model.tokenize(piece))


def splits_at_marks(config: dict[str, Any]) -> bool:
    """Whether a tokenizer (its JSON ``config``) tokenizes a text as the concatenation of its
    pieces: the normalizer WordLlama's has, no pre-tokenizer, deterministic BPE, and no vocabulary
    token with a word mark after another character (no merge crosses a piece's start)."""
    model = config.get("model") or {}
    if (
        (config.get("normalizer") or {}).get("normalizers") != _NORMALIZERS
        or config.get("pre_tokenizer") is not None
        or model.get("type") != "BPE"
        or model.get("dropout")
    ):
        return False
    return not any(MARK in token.lstrip(MARK) for token in model.get("vocab", {}))
