"""WordLlama's token ids piece by piece (``memory.embedders.pieces``) against the tokenizer's own."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from bench.recall_corpus import generate
from memory.embedders.local import _token_ids
from memory.embedders.pieces import MARK, PieceTokenizer, splits_at_marks
from memory.pipeline.units import conversation_units

EDGE_CASES = [
    "", " ", "   ", "a", " a", "a ", "a  b", "  lead", "trail   ", "x\ny\tz", "tabs\t\tand\n\nnewlines ",
    "Ünïcödé ✓ café", "emoji 🎉🎉 ok", f"{MARK}literal{MARK}mark {MARK}{MARK}", "中文 文本 测试",
    "$1,234.56 (approx.)", "don't won't I'm", "hello <s> world </s>", "<unk> x", "a<s>b",
    "https://example.com/" + "aZ09+/" * 40 + " and a long word",  # a piece too long to cache
]


def _own_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def test_wordllama_tokenizer_is_tokenized_piece_by_piece():
    """The shape the cache relies on holds for the tokenizer the wheel ships: a newer release that
    changes it falls back to whole texts (next tests), so this says which path runs."""
    assert _token_ids().by_piece


def test_ids_are_the_tokenizers_own_for_conversation_units_and_edge_cases():
    token_ids = _token_ids()
    sessions, questions = generate(seed=5, users=2)
    texts = list(EDGE_CASES) + [q.text for q in questions[:100]]
    for session in sessions[:60]:
        turns = [{"role": t["role"], "text": t["text"]} for t in session.turns]
        user_text = " ".join(t["text"] for t in turns if t["role"] == "user")
        texts += [u.content for u in conversation_units("sum-" + "0" * 32, turns, user_text[:1500])]
    assert len(texts) > 1000
    for _ in range(2):  # cold, then from the cache
        assert [list(ids) for ids in token_ids(texts)] == [_own_ids(token_ids.tokenizer, t) for t in texts]


def test_ids_are_the_tokenizers_own_for_random_whitespace_and_symbols():
    token_ids = _token_ids()
    rng = random.Random(7)
    alphabet = list("ab  \n\t") + [MARK, "é", "✓", "🎉", ",", ".", "?", "<", "s", ">", "/"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(3000)]
    assert [list(ids) for ids in token_ids(texts)] == [_own_ids(token_ids.tokenizer, t) for t in texts]


def _bpe(vocab: dict[str, int], merges: list[tuple[str, str]], *, pre_tokenizer: bool) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    config = json.loads(_token_ids().tokenizer.to_str())
    built = json.loads(tokenizer.to_str())
    built["normalizer"] = config["normalizer"]  # WordLlama's: prepend a mark, spaces become marks
    if pre_tokenizer:
        built["pre_tokenizer"] = json.loads(pre_tokenizers.Whitespace().__getstate__())
    return Tokenizer.from_str(json.dumps(built))


@pytest.mark.parametrize("shape", ["merge across a piece start", "pre-tokenizer"])
def test_a_tokenizer_of_another_shape_is_used_whole(shape):
    """A vocabulary token with a mark after a letter (here ``a▁b``, merged across the start of the
    second piece) or a pre-tokenizer breaks the piece rule: the tokenizer then runs on whole
    texts and the ids are still its own."""
    symbols = ["<unk>", MARK, "a", "b", f"a{MARK}", f"a{MARK}b", f"{MARK}a"]
    vocab = {s: i for i, s in enumerate(symbols)}
    merges = [("a", MARK), (f"a{MARK}", "b"), (MARK, "a")]
    tokenizer = _bpe(vocab, merges, pre_tokenizer=shape == "pre-tokenizer")
    token_ids = PieceTokenizer(tokenizer)
    assert not token_ids.by_piece
    texts = ["a b", "ab a b", "", " a"]
    assert [list(ids) for ids in token_ids(texts)] == [_own_ids(tokenizer, t) for t in texts]
    if shape == "merge across a piece start":  # what pieces would have got wrong
        assert vocab[f"a{MARK}b"] in _own_ids(tokenizer, "a b")


def test_splits_at_marks_needs_wordllamas_normalizer():
    config = json.loads(_token_ids().tokenizer.to_str())
    assert splits_at_marks(config)
    assert not splits_at_marks({**config, "normalizer": None})
    assert not splits_at_marks({**config, "model": {**config["model"], "type": "Unigram"}})


def test_long_pieces_are_not_kept_in_the_cache():
    """The cache is bounded in entries: a piece longer than ``CACHED_PIECE_CHARS`` (an encoded
    blob pasted in a conversation) is tokenized, not kept."""
    token_ids = PieceTokenizer(_token_ids().tokenizer)
    blob = "QUJD" * 100
    assert list(token_ids([f"see {blob} now"])[0]) == _own_ids(token_ids.tokenizer, f"see {blob} now")
    assert token_ids._cached_ids.cache_info().currsize == 2  # "▁see" and "▁now"
