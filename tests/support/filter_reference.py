"""An independent evaluator of S3 Vectors' metadata filters, for property tests of the filter code."""

from __future__ import annotations

import math
from typing import Any, Mapping


def reference(filter: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    """S3 Vectors' documented filter semantics, written independently of memory.index.filters:
    entries of a mapping are ANDed; ``$eq``/``$in`` match a list if any element matches,
    ``$ne``/``$nin`` if none does; a missing field fails every operator but ``$ne``, ``$nin``
    and ``$exists: false``; numeric operators match only numbers; booleans equal only booleans."""
    return all(_entry(name, value, metadata) for name, value in filter.items())


def _entry(name: str, value: Any, metadata: Mapping[str, Any]) -> bool:
    if name == "$and":
        return all(reference(member, metadata) for member in value)
    if name == "$or":
        return any(reference(member, metadata) for member in value)
    op, operand = next(iter(value.items())) if isinstance(value, dict) else ("$eq", value)
    if op == "$exists":
        return (name in metadata) == operand
    if name not in metadata:
        return op in ("$ne", "$nin")
    stored = metadata[name]
    items = stored if isinstance(stored, list) else [stored]
    wanted = operand if isinstance(operand, list) else [operand]
    found = any(_equal(item, w) for item in items for w in wanted)
    if op in ("$eq", "$in"):
        return found
    if op in ("$ne", "$nin"):
        return not found
    if not _number(stored):
        return False
    return {"$gt": stored > operand, "$gte": stored >= operand, "$lt": stored < operand, "$lte": stored <= operand}[op]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b
