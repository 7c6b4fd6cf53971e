"""Identity: tenant ids validated, never normalised; immutable."""

from __future__ import annotations

import dataclasses

import pytest

from auth import AuthError, Identity


@pytest.mark.parametrize(
    "tenant", ["Tenant-1", " tenant-1", "tenant_1", "a--b", "-a", "", "x" * 60, 5]
)
def test_invalid_tenant_rejected_not_normalised(tenant: object) -> None:
    with pytest.raises(AuthError) as info:
        Identity(tenant_id=tenant, user_id="u")  # type: ignore[arg-type]
    assert info.value.reason == "invalid_tenant" and info.value.status_code == 401


@pytest.mark.parametrize("user", ["", None, 3, "\ud800", "a\udfffb", "   ", "\t\n"])
def test_user_required(user: object) -> None:
    with pytest.raises(AuthError) as info:
        Identity(tenant_id="tenant-001", user_id=user)  # type: ignore[arg-type]
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("user", ["a\x00b", "alice\n", "a\x7fb", "ali\u200bce", "\u202eecila", "a\u2028b", "a\ufeff"])
def test_user_id_with_control_or_format_characters_is_refused(user: str) -> None:
    """No identity provider's user id holds them (Cognito's usernames exclude them, its sub is a
    UUID); they would reach index metadata, erasure folders and logs as invisible differences."""
    with pytest.raises(AuthError) as info:
        Identity(tenant_id="tenant-001", user_id=user)
    assert info.value.reason == "malformed"


@pytest.mark.parametrize("user", ["alice", "Jos\u00e9 Garc\u00eda", "\u5f20\u4f1f", "a3f1c2d4-0b5e-4c6a-9d7f-1e2b3c4d5e6f", "user+tag@example.com"])
def test_ordinary_user_ids_are_accepted(user: str) -> None:
    assert Identity(tenant_id="tenant-001", user_id=user).user_id == user


def test_groups_must_be_strings() -> None:
    with pytest.raises(AuthError):
        Identity(tenant_id="tenant-001", user_id="u", groups=("ok", 1))  # type: ignore[arg-type]


def test_identity_is_frozen_and_hashable() -> None:
    identity = Identity(tenant_id="tenant-001", user_id="u", groups=("a",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.tenant_id = "tenant-002"  # type: ignore[misc]
    assert {identity: 1}[Identity(tenant_id="tenant-001", user_id="u", groups=("a",))] == 1


def test_unknown_reason_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        AuthError("nope")  # type: ignore[arg-type]
