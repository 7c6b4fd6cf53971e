"""Property-based tests of the deterministic memory keys (memory.keys)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from memory.index.limits import validate_key
from memory.keys import fact_key, summary_key

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None)

OPTIONAL = st.one_of(st.none(), st.text(max_size=12))
#: Short texts over a few characters, so that distinct tuples often share parts, separators and prefixes.
PART = st.text(alphabet="ab-~\x00\x01é", max_size=4)
SUMMARY_PARTS = st.tuples(
    st.one_of(st.none(), PART), PART, st.one_of(st.none(), PART), PART, st.one_of(st.none(), PART)
)
#: A key both S3 Vectors and any file system accept as a name: short, ASCII, no separators.
_SAFE_KEY = re.compile(r"(sum|fact)-[0-9a-f]{64}")


@PROPERTY
@given(st.tuples(OPTIONAL, st.text(), OPTIONAL, st.text(), OPTIONAL))
def test_summary_keys_are_valid_and_file_name_safe(parts: tuple) -> None:
    """Any (tenant, user, agent, conversation, marker) gives a valid S3 Vectors key that is also
    a safe file name (``sum-`` and 64 hex digits: no separator, dot or non-ASCII character)."""
    key = summary_key(*parts)
    assert validate_key(key) == key and _SAFE_KEY.fullmatch(key)


@PROPERTY
@given(st.lists(SUMMARY_PARTS, min_size=2, max_size=6, unique=True))
def test_distinct_summary_tuples_never_share_a_key(tuples: list[tuple]) -> None:
    """Distinct (tenant, user, agent, conversation, marker) tuples never collide: separators in
    the parts, None against "" and a missing marker against an empty one all stay apart."""
    keys = [summary_key(*t) for t in tuples]
    assert len(set(keys)) == len(keys)


@PROPERTY
@given(st.lists(st.tuples(st.one_of(st.none(), PART), PART, st.one_of(st.none(), PART), PART), min_size=2, max_size=6))
def test_fact_keys_differ_exactly_when_owner_or_normalised_text_differ(facts: list[tuple]) -> None:
    """Fact keys are valid and safe, and two facts share a key exactly when they have the same
    owner and the same whitespace-normalised text."""
    for fact in facts:
        assert _SAFE_KEY.fullmatch(fact_key(*fact))
    identity = {(t, u, a, " ".join(c.split())) for t, u, a, c in facts}
    assert len({fact_key(*fact) for fact in facts}) == len(identity)
