"""The benchmark's opt-in MiniLM embedder: pinned files are checked, vectors are MiniLM's."""

from __future__ import annotations

import pytest

from bench import minilm
from bench._common import sha256_checked
from memory.errors import ConfigurationError
from tests.support.dense_models import assert_paraphrase_closer_than_unrelated


def test_a_file_with_another_hash_is_refused(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not the pinned model")
    with pytest.raises(ConfigurationError, match="model.onnx has sha256"):
        sha256_checked(model, minilm.MODEL_SHA256)


@pytest.mark.skipif(not minilm.available(), reason="needs pip install '.[bench-minilm]'")
def test_paraphrase_is_closer_than_an_unrelated_sentence():
    assert_paraphrase_closer_than_unrelated(minilm.MiniLMEmbedder(), 384)
