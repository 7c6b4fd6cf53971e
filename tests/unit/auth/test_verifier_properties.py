"""Property-based tests of bearer-token verification (auth.verifier)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from auth.dev_issuer import DevIssuer
from auth.errors import REASONS, AuthError
from auth.identity import Identity
from auth.verifier import TokenVerifier
from tenant_ids import tenant_id_problem

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None)
_URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def issuer() -> Iterator[DevIssuer]:
    """A dev issuer (its key and JWKS in a temporary directory)."""
    with tempfile.TemporaryDirectory() as root:
        yield DevIssuer(Path(root) / "issuer")


@pytest.fixture(scope="module")
def dev(issuer: DevIssuer) -> tuple[TokenVerifier, str, Identity]:
    """The issuer's verifier, one valid token of tenant-a/alice and its identity."""
    verifier = issuer.verifier()
    token = issuer.mint("tenant-a", "alice")
    return verifier, token, verifier.verify(token)


def _refused(verifier: TokenVerifier, value: str) -> AuthError:
    """The error ``verify`` raises for ``value``; it must be the generic 401 (nothing else leaks)."""
    with pytest.raises(AuthError) as info:
        verifier.verify(value)
    error = info.value
    assert type(error) is AuthError and error.status_code == 401 and error.reason in REASONS
    assert str(error) == AuthError.public_message and error.args == (AuthError.public_message,)
    return error


@PROPERTY
@given(st.one_of(st.text(st.characters(exclude_categories=())), st.text(alphabet=_URLSAFE + ". ", max_size=80), st.from_regex(r"Bearer [\w.-]{0,60}", fullmatch=True)))
@example("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
@example("e30.e30.e30")
@example("\x00")
@example("Bearer \ud800.e30.e30")
def test_any_string_is_refused_with_the_generic_401(dev: tuple[TokenVerifier, str, Identity], value: str) -> None:
    """Any string that is not a token the issuer signed raises only AuthError, 401, whose message
    and args are the one generic text whatever failed (signature, claims or syntax): the reason
    code is for logs only."""
    _refused(dev[0], value)


@PROPERTY
@given(st.data())
def test_a_one_character_mutation_of_a_valid_token_is_refused_or_changes_nothing(
    dev: tuple[TokenVerifier, str, Identity], data: st.DataObject
) -> None:
    """Substituting, inserting or deleting one character anywhere in a valid dev token gives the
    generic 401, unless it only added whitespace around the token: then the very same identity."""
    verifier, token, identity = dev
    position = data.draw(st.integers(0, len(token)))
    char = data.draw(st.one_of(st.sampled_from(_URLSAFE + ". =+/"), st.characters()))
    kind = data.draw(st.sampled_from(["substitute", "insert", "delete"]))
    if kind == "insert":
        mutated = token[:position] + char + token[position:]
    elif position == len(token):
        return
    elif kind == "substitute":
        mutated = token[:position] + char + token[position + 1 :]
    else:
        mutated = token[:position] + token[position + 1 :]
    if mutated == token:
        return
    try:
        accepted = verifier.verify(mutated)
    except AuthError:
        _refused(verifier, mutated)
        return
    assert accepted == identity and mutated.strip() == token


CLAIM = st.one_of(
    st.text(max_size=60), st.from_regex(r"[a-z0-9-]{1,58}", fullmatch=True), st.integers(), st.none(),
    st.lists(st.just("tenant-a"), max_size=2), st.sampled_from(["tenant-a", "Tenant-A", "tenant-a\n", "../b", "a--b", "a" * 57]),
)


@PROPERTY
@given(CLAIM, CLAIM)
def test_a_signed_tenant_claim_becomes_the_identity_only_if_it_is_a_valid_tenant_id(
    issuer: DevIssuer, tenant: object, other: object
) -> None:
    """A correctly signed token whose tenant claim (``custom:tenantId``, else ``tenantId``) is not
    a valid tenant id is refused with the generic 401; a valid one is the identity's tenant,
    unchanged."""
    verifier = issuer.verifier()
    token = issuer.mint("tenant-a", "alice", claims={"custom:tenantId": tenant, "tenantId": other})
    if tenant_id_problem(tenant) is None:
        assert verifier.verify(token).tenant_id == tenant
    else:
        _refused(verifier, token)
