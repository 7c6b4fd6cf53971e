"""A semantic check shared by the benchmark's optional dense models (``bench.minilm``, ``bench.static_model``)."""

from __future__ import annotations

import math

from memory.embedders.protocol import Embedder


def assert_paraphrase_closer_than_unrelated(embedder: Embedder, dimension: int) -> None:
    """A paraphrased question scores above 0.4 against its fact and below 0.1 against an unrelated line."""
    question, fact, unrelated = embedder.embed(
        ["What's the name of the dog we adopted?",
         "We brought home a rescue greyhound last weekend and the kids named her Juniper.",
         "Q4 spend is $2M."], "retrieval")
    assert len(question) == dimension
    assert math.isclose(sum(x * x for x in question), 1.0, rel_tol=1e-4)
    similarity = sum(a * b for a, b in zip(question, fact))
    assert similarity > 0.4 > 0.1 > sum(a * b for a, b in zip(question, unrelated))
