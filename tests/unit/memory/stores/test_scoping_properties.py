"""Property-based tests of the filters stores build from a Scope (memory.stores.scoping)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.errors import IdentityTooLong, ValidationError
from memory.index.filters import matches
from memory.index.limits import validate_metadata
from memory.stores.scoping import check_storable_identity, ownership_filter, visibility_filter
from memory.types import Scope
from tests.support.s3vectors_double import MISSING_POLICIES, evaluate

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None)

#: Names that collide in every way but equality: case, prefixes, operators, empty and odd text.
NAME = st.one_of(st.sampled_from(["u", "U", "u ", "$eq", "$exists", "", "a.b", "*"]), st.text(max_size=6))
AGENT = st.one_of(st.none(), NAME.filter(bool))
STORED = st.fixed_dictionaries(
    {"user_id": NAME, "type": st.just("summary"), "stored_at_epoch": st.integers(0, 10)},
    optional={"agent_name": NAME.filter(bool)},
)


def _visible(scope: Scope, metadata: dict[str, Any]) -> bool:
    """Whether the visibility filter matches, in our evaluator and in the S3 Vectors double's."""
    found = matches(visibility_filter(scope), metadata)
    assert all(evaluate(visibility_filter(scope), metadata, missing=m) == found for m in MISSING_POLICIES)
    return found


def _owned(scope: Scope, metadata: dict[str, Any]) -> bool:
    """Whether the ownership filter matches, in our evaluator and in the S3 Vectors double's."""
    found = matches(ownership_filter(scope), metadata)
    assert all(evaluate(ownership_filter(scope), metadata, missing=m) == found for m in MISSING_POLICIES)
    return found


@PROPERTY
@given(NAME.filter(bool), AGENT, STORED)
def test_scope_filters_never_reach_another_users_memory(user: str, agent: str | None, stored: dict[str, Any]) -> None:
    """A scope's visibility and ownership filters match a memory only if it is the scope user's;
    visibility is exactly the agent rule (own agent's or shared, every agent's for a supervisor)
    and ownership deletes only the agent's own memories (all the user's without an agent)."""
    scope = Scope(user_id=user, tenant_id="t", agent_name=agent)
    mine = stored["user_id"] == user
    stored_by = stored.get("agent_name")
    assert _visible(scope, stored) == (mine and (agent is None or stored_by in (None, agent)))
    assert _owned(scope, stored) == (mine and (agent is None or stored_by == agent))


#: User ids around the size limit, with characters JSON escapes or UTF-8 widens.
LONG_USER = st.builds(lambda n, tail: "u" * n + tail, st.integers(1700, 2100), st.text(alphabet='a\x00"\\é\u2028𐀀', max_size=40))


@PROPERTY
@given(LONG_USER, st.one_of(st.none(), st.sampled_from(["orchestrator", "a" * 300])))
def test_an_identity_is_accepted_exactly_when_its_largest_unit_can_be_stored(user: str, agent: str | None) -> None:
    """``check_storable_identity`` accepts a user id and agent name exactly when the largest unit
    they could be stored with (longest type, latest date and start marker) fits the index's
    filterable-metadata limit: nothing is answered that could not then be stored."""
    largest = {"user_id": user, "type": "statement", "stored_at_epoch": 253402300799,
               "opened": "9999-12-31T23:59:59.999+00:00~ffffffff", "content": "text"}
    if agent is not None:
        largest["agent_name"] = agent
    try:
        validate_metadata(largest)
        storable = True
    except ValidationError:
        storable = False
    if storable:
        check_storable_identity(user, agent)
    else:
        with pytest.raises(IdentityTooLong):
            check_storable_identity(user, agent)
