"""The invocation_state contract: keys, the seed's tenant dict, and errors for malformed values."""

from __future__ import annotations

import pytest

from memory.plugin import invocation as invocation_module
from memory.plugin.invocation import (
    CONVERSATION_ID,
    END_SESSION,
    TENANT_CONTEXT,
    USER_ID,
    InvalidInvocationState,
    Invocation,
    identity_state,
    parse_tenant_context,
    read_invocation,
)


def test_round_trip_through_the_state_dict() -> None:
    invocation = Invocation("alice", "conv-1", "tenant-001", end_session=True)
    state = invocation.to_state()
    assert state == {USER_ID: "alice", CONVERSATION_ID: "conv-1", TENANT_CONTEXT: "tenant-001", END_SESSION: True}
    assert read_invocation(state) == invocation


def test_single_tenant_state_has_no_tenant_key() -> None:
    state = Invocation("alice", "conv-1").to_state()
    assert TENANT_CONTEXT not in state and END_SESSION not in state
    assert read_invocation(state) == Invocation("alice", "conv-1")


def test_seed_dict_and_plain_string_name_the_same_tenant() -> None:
    as_dict = read_invocation({USER_ID: "u", CONVERSATION_ID: "c",
                               TENANT_CONTEXT: {"tenantId": "tenant-001", "tenantName": "Acme Corp"}})
    as_text = read_invocation({USER_ID: "u", CONVERSATION_ID: "c", TENANT_CONTEXT: "tenant-001"})
    assert as_dict == as_text and as_dict is not None and as_dict.tenant_id == "tenant-001"


@pytest.mark.parametrize("state", [{}, {USER_ID: "alice"}, {CONVERSATION_ID: "c"}, {USER_ID: None, CONVERSATION_ID: "c"}])
def test_missing_identity_is_none_not_a_default_user(state) -> None:
    assert read_invocation(state) is None


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({USER_ID: "", CONVERSATION_ID: "c"}, "user_id"),
        ({USER_ID: 7, CONVERSATION_ID: "c"}, "user_id"),
        ({USER_ID: "u", CONVERSATION_ID: " "}, "conversation_id"),
        ({USER_ID: "u", CONVERSATION_ID: "c", TENANT_CONTEXT: {"tenantName": "Acme"}}, "tenantId"),
        ({USER_ID: "u", CONVERSATION_ID: "c", TENANT_CONTEXT: {"tenantId": None}}, "string"),
        ({USER_ID: "u", CONVERSATION_ID: "c", TENANT_CONTEXT: "../other"}, "lowercase"),
        ({USER_ID: "u", CONVERSATION_ID: "c", TENANT_CONTEXT: ["tenant-001"]}, "dict"),
        ({USER_ID: "u", CONVERSATION_ID: "c", END_SESSION: "true"}, "boolean"),
    ],
)
def test_malformed_values_raise_a_clear_error(state, match) -> None:
    with pytest.raises(InvalidInvocationState, match=match):
        read_invocation(state)


def test_invalid_tenant_is_also_refused_by_the_typed_constructor() -> None:
    with pytest.raises(InvalidInvocationState):
        Invocation("alice", "c", "Tenant A")
    assert parse_tenant_context(None) is None


def test_identity_state_forwards_identity_only() -> None:
    state = {**Invocation("u", "c", "t-1", end_session=True).to_state(), "other": 1}
    assert identity_state(state) == {TENANT_CONTEXT: "t-1", USER_ID: "u", CONVERSATION_ID: "c"}


def test_a_conversations_repeated_state_is_validated_once(monkeypatch) -> None:
    """Every turn of a conversation carries the same state: its tenant is validated on the first."""
    seen: list[object] = []
    validate = invocation_module.tenant_id_from_context
    monkeypatch.setattr(invocation_module, "tenant_id_from_context", lambda value: seen.append(value) or validate(value))
    state = Invocation("alice", "conv-validated-once", "tenant-001").to_state()
    first = read_invocation(state)
    validations = len(seen)
    assert [read_invocation(dict(state)) for _ in range(3)] == [first] * 3
    assert len(seen) == validations


@pytest.mark.parametrize(
    ("valid", "malformed"),
    [
        ({END_SESSION: True}, {END_SESSION: 1}),  # equal and hashed alike, yet not a boolean
        ({TENANT_CONTEXT: "tenant-001"}, {TENANT_CONTEXT: {"tenantName": "Acme"}}),
        ({TENANT_CONTEXT: "tenant-001"}, {TENANT_CONTEXT: ["tenant-001"]}),
    ],
)
def test_a_malformed_state_is_refused_after_a_valid_one(valid, malformed) -> None:
    base = {USER_ID: "u", CONVERSATION_ID: "conv-refused-after-valid"}
    assert read_invocation({**base, **valid}) is not None
    with pytest.raises(InvalidInvocationState):
        read_invocation({**base, **malformed})
    with pytest.raises(InvalidInvocationState):  # a refusal is not remembered as a parse either
        read_invocation({**base, **malformed})

