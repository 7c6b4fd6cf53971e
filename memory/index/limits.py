"""Amazon S3 Vectors service limits, checked identically by every index backend.

Source: the S3 Vectors "Limitations and restrictions" page of the Amazon S3 user guide
and the ``s3vectors`` service model (key length, batch sizes, dimension range).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Mapping, Sequence

import numpy as np

from memory.errors import ValidationError
from memory.types import NON_FILTERABLE_KEYS

MIN_DIMENSION = 1
MAX_DIMENSION = 4096
MAX_KEY_LENGTH = 1024
MAX_TOP_K = 100
MAX_PUT_BATCH = 500
MAX_DELETE_BATCH = 500
MAX_GET_BATCH = 100
MAX_LIST_PAGE = 1000
#: Largest request payload (PutVectors of wide vectors reaches it before 500 vectors).
MAX_REQUEST_BYTES = 20 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_FILTERABLE_METADATA_BYTES = 2 * 1024
MAX_METADATA_KEYS = 50
MAX_NON_FILTERABLE_KEYS = 10


#: Index names: 3-63 lowercase letters, digits, hyphens and dots, a letter or digit at both ends.
_INDEX_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_INDEX_RULE = "3-63 lowercase letters, digits, hyphens or dots, a letter or digit at both ends"
#: Vector bucket names: the same without dots (S3 Vectors' vector bucket naming rules).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_BUCKET_RULE = "3-63 lowercase letters, digits or hyphens, a letter or digit at both ends"


def validate_index_name(name: object) -> str:
    """Return ``name`` if S3 Vectors accepts it as an index name (3-63 of ``a-z 0-9 - .``,
    alphanumeric at both ends)."""
    if not isinstance(name, str) or not _INDEX_NAME.fullmatch(name):
        raise ValidationError(f"invalid index name {name!r}: {_INDEX_RULE}")
    return name


def validate_bucket_name(name: object) -> str:
    """Return ``name`` if S3 Vectors accepts it as a vector bucket name (3-63 of ``a-z 0-9 -``,
    alphanumeric at both ends)."""
    if not isinstance(name, str) or bucket_name_problem(name):
        raise ValidationError(f"invalid vector bucket name {name!r}: {_BUCKET_RULE}")
    return name


def bucket_name_problem(name: str) -> str | None:
    """The vector bucket naming rule ``name`` breaks, or None; the answer never quotes ``name``
    (the app's settings errors name the variable, never its value)."""
    return None if _BUCKET_NAME.fullmatch(name) else _BUCKET_RULE


def validate_dimension(dimension: int) -> int:
    """Return ``dimension`` if S3 Vectors accepts it (1-4096)."""
    if isinstance(dimension, bool) or not isinstance(dimension, int):
        raise ValidationError("dimension must be an integer")
    if not MIN_DIMENSION <= dimension <= MAX_DIMENSION:
        raise ValidationError(f"dimension must be {MIN_DIMENSION}-{MAX_DIMENSION}, got {dimension}")
    return dimension


def validate_key(key: object) -> str:
    """Return ``key`` if it is a 1-1024 character string."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationError(f"vector key must be a string of 1-{MAX_KEY_LENGTH} characters")
    return key


def validate_top_k(top_k: object, name: str = "top_k") -> int:
    """Return ``top_k`` if it is an integer in 1-100 (the error names the argument ``name``)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise ValidationError(f"{name} must be an integer in 1-{MAX_TOP_K}")
    return top_k


def validate_min_score(min_score: object, name: str = "min_score") -> float | None:
    """Return ``min_score`` if it is None or a cosine similarity (-1 to 1): a floor above 1 keeps
    every memory out, silently (the error names the argument ``name``)."""
    if min_score is None:
        return None
    if isinstance(min_score, bool) or not isinstance(min_score, (int, float)) or not -1.0 <= min_score <= 1.0:
        raise ValidationError(f"{name} must be a cosine similarity in -1..1, or None for the store's floor")
    return float(min_score)


def validate_vector(vector: Sequence[float], dimension: int) -> np.ndarray:
    """The vector as a float32 array if it has ``dimension`` finite values and is not all zeros."""
    if isinstance(vector, (str, bytes)):
        raise ValidationError("vector must be a sequence of numbers")
    try:
        values = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValidationError("vector must be a sequence of numbers") from exc
    if values.ndim != 1 or values.shape[0] != dimension:
        raise ValidationError(f"vector must have {dimension} values, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValidationError("vector values must be finite (no NaN or infinity)")
    if not values.any():
        raise ValidationError("zero vectors are not allowed with the cosine metric")
    return values.astype(np.float32)


def _is_metadata_value(value: Any) -> bool:
    if isinstance(value, (str, bool, int, float)):
        return not (isinstance(value, float) and not math.isfinite(value))
    if isinstance(value, list):
        return bool(value) and all(
            isinstance(v, (str, bool, int, float)) and not isinstance(v, list) for v in value
        )
    return False


def _size(items: Mapping[str, Any]) -> int:
    return len(json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def filterable_metadata_bytes(metadata: Mapping[str, Any]) -> int:
    """Size of the filterable part of ``metadata`` as S3 Vectors counts it against
    ``MAX_FILTERABLE_METADATA_BYTES`` (every key but ``NON_FILTERABLE_KEYS``, compact UTF-8 JSON)."""
    return _size({k: v for k, v in metadata.items() if k not in NON_FILTERABLE_KEYS})


def validate_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``metadata`` if it respects the key count and size limits.

    Sizes are measured as compact UTF-8 JSON: the whole document at most 40 KB, the
    filterable part (every key except ``content`` and ``conversation_id``) at most 2 KB.
    """
    if not isinstance(metadata, Mapping):
        raise ValidationError("metadata must be a mapping")
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValidationError(f"metadata may have at most {MAX_METADATA_KEYS} keys")
    for name, value in metadata.items():
        if not isinstance(name, str) or not name:
            raise ValidationError("metadata keys must be non-empty strings")
        if not _is_metadata_value(value):
            raise ValidationError(
                f"metadata value of {name!r} must be a string, number, boolean or non-empty list"
            )
    if _size(metadata) > MAX_METADATA_BYTES:
        raise ValidationError(f"metadata exceeds {MAX_METADATA_BYTES} bytes")
    if filterable_metadata_bytes(metadata) > MAX_FILTERABLE_METADATA_BYTES:
        raise ValidationError(f"filterable metadata exceeds {MAX_FILTERABLE_METADATA_BYTES} bytes")
    return dict(metadata)
