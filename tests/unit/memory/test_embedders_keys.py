"""Embedders (Nova 2 via a bedrock-runtime Stubber, WordLlama offline) and memory keys."""

from __future__ import annotations

import io
import json
import threading
from datetime import datetime

import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from memory.embedders import local as embedders
from memory.aws import make_client
from memory.embedders.bedrock import BedrockEmbedder
from memory.embedders.local import LocalEmbedder
from memory.embedders.protocol import check_dimensions
from memory.errors import AccessDenied, ConfigurationError, ValidationError
from memory.keys import new_conversation_marker, random_key, summary_key
from memory.embedders.protocol import Embedder


class JsonBody:
    """Matches a request body by its parsed JSON, whatever the key order."""

    def __init__(self, expected):
        self.expected = expected

    def __eq__(self, other):
        return json.loads(other) == self.expected


def _nova_response(vector):
    data = json.dumps({"embeddings": [{"embeddingType": "TEXT", "embedding": vector}]}).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def _nova_request(text, purpose):
    return {
        "modelId": "amazon.nova-2-multimodal-embeddings-v1:0",
        "contentType": "application/json",
        "accept": "application/json",
        "body": JsonBody(
            {
                "schemaVersion": "nova-multimodal-embed-v1",
                "taskType": "SINGLE_EMBEDDING",
                "singleEmbeddingParams": {
                    "embeddingPurpose": purpose,
                    "embeddingDimension": 1024,
                    "text": {"truncationMode": "END", "value": text},
                },
            }
        ),
    }


@pytest.fixture
def bedrock():
    client = make_client("bedrock-runtime", region="us-east-1", max_attempts=1)
    with Stubber(client) as stubber:
        yield BedrockEmbedder(client), stubber
        stubber.assert_no_pending_responses()


def test_bedrock_embedder_purposes_and_normalisation(bedrock):
    embedder, stubber = bedrock
    raw = [3.0, 4.0] + [0.0] * 1022
    stubber.add_response("invoke_model", _nova_response(raw), _nova_request("a fact", "GENERIC_INDEX"))
    stubber.add_response("invoke_model", _nova_response(raw), _nova_request("a query", "GENERIC_RETRIEVAL"))
    (stored,) = embedder.embed(["a fact"], "index")
    (query,) = embedder.embed(["a query"], "retrieval")
    assert isinstance(embedder, Embedder) and embedder.dimension == 1024
    assert stored[:2] == pytest.approx([0.6, 0.8]) and len(stored) == 1024
    assert query == stored


def test_bedrock_embedder_errors(bedrock):
    embedder, stubber = bedrock
    stubber.add_client_error("invoke_model", "AccessDeniedException", http_status_code=403)
    with pytest.raises(AccessDenied):
        embedder.embed(["x"], "index")
    stubber.add_response("invoke_model", _nova_response([1.0] * 256), _nova_request("y", "GENERIC_INDEX"))
    with pytest.raises(ConfigurationError, match="256-d"):
        embedder.embed(["y"], "index")
    with pytest.raises(ValidationError):
        embedder.embed([" "], "index")
    with pytest.raises(ValidationError):
        embedder.embed(["z"], "search")


def test_bedrock_embedder_configuration():
    with pytest.raises(ConfigurationError):
        BedrockEmbedder(dimension=1000, region="us-east-1")
    with pytest.raises(ConfigurationError):
        BedrockEmbedder()


def test_local_embedder_is_offline_unit_256d_and_deterministic():
    embedder = LocalEmbedder()
    vectors = np.array(embedder.embed(["the budget is two million", "the budget is two million", "cats purr"], "index"))
    assert vectors.shape == (3, 256)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    assert vectors[0] @ vectors[1] == pytest.approx(1.0, abs=1e-5)
    assert vectors[0] @ vectors[2] < 0.9
    assert embedder.embed([], "retrieval") == []
    assert embedder.embed(["??"], "retrieval")[0] == pytest.approx(embedder.embed(["??"], "index")[0])


def test_local_embedder_loads_the_model_once_across_threads(monkeypatch):
    monkeypatch.setattr(embedders, "_WORDLLAMA", None)
    loads = []
    from wordllama import WordLlama

    original = WordLlama.load

    def counting_load(*args, **kwargs):
        loads.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(WordLlama, "load", staticmethod(counting_load))
    results = []
    threads = [threading.Thread(target=lambda: results.append(LocalEmbedder().embed(["hi"], "index"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(results) == 8


def test_check_dimensions_message():
    with pytest.raises(ConfigurationError, match="256-d vectors but the index expects 1024-d"):
        check_dimensions(LocalEmbedder(), 1024)
    check_dimensions(LocalEmbedder(), 256)


def test_summary_key_is_deterministic_and_unambiguous():
    key = summary_key("acme", "u1", "planner", "conv-1")
    assert key == summary_key("acme", "u1", "planner", "conv-1")
    assert key.startswith("sum-") and len(key) == 68
    variants = {
        summary_key("acme", "u1", "planner", "conv-2"),
        summary_key("acme", "u2", "planner", "conv-1"),
        summary_key("globex", "u1", "planner", "conv-1"),
        summary_key("acme", "u1", None, "conv-1"),
        summary_key("acme", "u1", "", "conv-1"),
        summary_key(None, "u1", "planner", "conv-1"),
        summary_key("acme", "u1p", "lanner", "conv-1"),
        summary_key("acmeu1", "", "planner", "conv-1"),
    }
    assert key not in variants and len(variants) == 8


def test_summary_key_folds_in_the_conversation_start_marker():
    opened = new_conversation_marker()
    key = summary_key("acme", "u1", "planner", "conv-1", opened)
    assert key == summary_key("acme", "u1", "planner", "conv-1", opened)  # a replay keeps its key
    assert key.startswith("sum-") and len(key) == 68
    others = {
        summary_key("acme", "u1", "planner", "conv-1"),  # no marker: the key of older entries
        summary_key("acme", "u1", "planner", "conv-1", new_conversation_marker()),
        summary_key("acme", "u1", "planner", "conv-1", ""),
        summary_key("acme", "u1", "planner", "conv-1" + opened),
    }
    assert key not in others and len(others) == 4


def test_conversation_markers_are_unique_and_start_with_the_time():
    markers = {new_conversation_marker() for _ in range(1000)}
    assert len(markers) == 1000
    opened_at, nonce = next(iter(markers)).split("~")
    assert datetime.fromisoformat(opened_at).tzinfo is not None and len(nonce) == 8


def test_random_keys_differ():
    assert random_key() != random_key() and random_key().startswith("mem-")


@pytest.mark.parametrize(("preset", "expected"), [(None, "false"), ("true", "true")])
def test_loading_wordllama_turns_tokenizer_threads_off_unless_set(preset, expected):
    """A fresh process: loading the model defaults ``TOKENIZERS_PARALLELISM`` to false (its thread
    pool costs more CPU than it saves on a few short texts) and keeps an explicit choice."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    if preset is not None:
        env["TOKENIZERS_PARALLELISM"] = preset
    code = ("import os\nfrom memory.embedders.local import LocalEmbedder\n"
            "assert 'TOKENIZERS_PARALLELISM' not in os.environ or os.environ['TOKENIZERS_PARALLELISM'] == 'true'\n"
            "LocalEmbedder().embed(['hello world'], 'index')\nprint(os.environ['TOKENIZERS_PARALLELISM'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == expected


def test_local_embedder_pools_without_padding_exactly_as_wordllama_does_per_text():
    """``mean_token_vectors`` skips WordLlama's batch padding; each text's vector must still be
    WordLlama's own (embedded alone, where no padding happens), whatever else is in the batch,
    and the model's tokenizer keeps its padding for WordLlama's own calls."""
    import numpy as np

    from memory.embedders.local import _token_ids, _wordllama, mean_token_vectors

    model = _wordllama()
    texts = ["hello world", "??", "", "Ünïcödé ✓ café", "USER: " + "the Falcon project budget. " * 40, "x"]
    ours = mean_token_vectors(model, _token_ids(), texts)
    alone = np.stack([model.embed([t], norm=False)[0] for t in texts])
    assert ours.shape == (len(texts), 256) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, alone, rtol=0, atol=1e-6)
    assert not ours[2].any()  # no token: zeros, as WordLlama gives
    assert model.tokenizer.padding is not None and _token_ids().tokenizer.padding is None
    vectors = LocalEmbedder().embed(texts, "index")
    np.testing.assert_allclose(vectors[4], LocalEmbedder().embed([texts[4]], "index")[0], atol=1e-6)
