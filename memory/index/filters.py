"""S3 Vectors' metadata filter language: validated once, evaluated in Python by LocalIndex.

A filter is a mapping. Top-level (and ``$and``/``$or`` member) mappings AND their entries
(``S3VectorsIndex`` sends them as the ``$and`` the service documents: :func:`explicit_and`).
An entry is either ``{"$and": [f, ...]}``/``{"$or": [f, ...]}`` or ``{field: condition}``,
where ``condition`` is a plain value (shorthand for ``$eq``) or a one-operator mapping:
``$eq $ne`` (string, number, boolean), ``$in $nin`` (non-empty list), ``$exists`` (boolean),
``$gt $gte $lt $lte`` (numbers). Against a list-valued field, ``$eq``/``$in`` match if any
element matches and ``$ne``/``$nin`` if none does. A missing field fails every operator
except ``$ne``, ``$nin`` and ``$exists: false``. Fields must be filterable metadata keys.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from memory.errors import ValidationError
from memory.types import NON_FILTERABLE_KEYS

Predicate = Callable[[Mapping[str, Any]], bool]

_SCALAR_OPS = {"$eq", "$ne"}
_LIST_OPS = {"$in", "$nin"}
_NUMBER_OPS = {"$gt", "$gte", "$lt", "$lte"}
_MISSING = object()


def _is_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, bool, int))


def is_number(value: Any) -> bool:
    """Whether a numeric operator can match ``value``: a finite int or float, not a bool."""
    return _is_scalar(value) and isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Return ``filter`` unchanged if it is well formed; raise ValidationError otherwise."""
    if filter is None:
        return None
    compile_filter(filter)
    return dict(filter)


def explicit_and(filter: Mapping[str, Any]) -> dict[str, Any]:
    """A valid ``filter`` with every mapping of several entries written as ``{"$and": [...]}``, one
    entry per member (the form S3 Vectors documents for combined conditions; same meaning)."""
    parts = [
        {name: [explicit_and(member) for member in value] if name in ("$and", "$or") else value}
        for name, value in filter.items()
    ]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def compile_filter(filter: Mapping[str, Any] | None) -> Predicate:
    """Validate ``filter`` and return a predicate over a record's metadata."""
    if filter is None:
        return lambda _metadata: True
    return _compile_mapping(filter)


def matches(filter: Mapping[str, Any] | None, metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` satisfies ``filter`` (None matches everything)."""
    return compile_filter(filter)(metadata)


def _compile_mapping(filter: Any) -> Predicate:
    if not isinstance(filter, Mapping) or not filter:
        raise ValidationError("a filter must be a non-empty mapping")
    parts = [_compile_entry(name, value) for name, value in filter.items()]
    if len(parts) == 1:
        return parts[0]
    return lambda m: all(p(m) for p in parts)


def _compile_entry(name: Any, value: Any) -> Predicate:
    if not isinstance(name, str) or not name:
        raise ValidationError("filter field names must be non-empty strings")
    if name in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise ValidationError(f"{name} takes a non-empty list of filters")
        parts = [_compile_mapping(v) for v in value]
        if name == "$and":
            return lambda m: all(p(m) for p in parts)
        return lambda m: any(p(m) for p in parts)
    if name.startswith("$"):
        raise ValidationError(f"unknown filter operator {name!r}")
    if name in NON_FILTERABLE_KEYS:
        raise ValidationError(f"metadata key {name!r} is not filterable")
    if isinstance(value, Mapping):
        if len(value) != 1:
            raise ValidationError(f"condition on {name!r} must have exactly one operator")
        ((op, operand),) = value.items()
        return _compile_condition(name, op, operand)
    return _compile_condition(name, "$eq", value)


def _compile_condition(name: str, op: Any, operand: Any) -> Predicate:
    if op in _SCALAR_OPS:
        if not _is_scalar(operand):
            raise ValidationError(f"{op} on {name!r} needs a string, number or boolean")
        if op == "$eq":
            return lambda m: _any_equal(m.get(name, _MISSING), (operand,))
        return lambda m: not _any_equal(m.get(name, _MISSING), (operand,))
    if op in _LIST_OPS:
        if not isinstance(operand, list) or not operand or not all(map(_is_scalar, operand)):
            raise ValidationError(f"{op} on {name!r} needs a non-empty list of scalars")
        values = tuple(operand)
        if op == "$in":
            return lambda m: _any_equal(m.get(name, _MISSING), values)
        return lambda m: not _any_equal(m.get(name, _MISSING), values)
    if op in _NUMBER_OPS:
        if not is_number(operand):
            raise ValidationError(f"{op} on {name!r} needs a number")
        compare = _COMPARATORS[op]
        return lambda m: _compare(m.get(name, _MISSING), operand, compare)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise ValidationError(f"$exists on {name!r} needs a boolean")
        return lambda m: (name in m) is operand
    raise ValidationError(f"unknown filter operator {op!r}")


def _same(a: Any, b: Any) -> bool:
    # Booleans never equal numbers (True != 1), unlike Python's default.
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _any_equal(stored: Any, values: tuple[Any, ...]) -> bool:
    if stored is _MISSING:
        return False
    items = stored if isinstance(stored, list) else (stored,)
    return any(_same(item, v) for item in items for v in values)


_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _compare(stored: Any, operand: float, compare: Callable[[float, float], bool]) -> bool:
    return is_number(stored) and compare(stored, operand)
