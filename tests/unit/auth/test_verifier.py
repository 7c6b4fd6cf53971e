"""TokenVerifier with real RS256 tokens and a loopback JWKS endpoint: accepted and rejected tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from auth import AuthError, Identity, TokenVerifier


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _reason(verifier: TokenVerifier, value: str | None) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(value)
    return info.value.reason


def test_valid_id_token_maps_identity(
    verifier: TokenVerifier, make_token: Callable[..., str]
) -> None:
    token = make_token(
        email="a@example.com",
        **{"cognito:groups": ["admins", "ops"], "custom:tenantName": "Acme", "custom:tier": "gold"},
    )
    identity = verifier.verify(f"Bearer {token}")
    assert identity == Identity(
        tenant_id="tenant-001",
        user_id="user-123",
        tenant_name="Acme",
        tier="gold",
        groups=("admins", "ops"),
        email="a@example.com",
        token_use="id",
        client_id="client-abc",
    )


def test_valid_access_token_uses_trigger_tenant_claim(
    verifier: TokenVerifier, make_token: Callable[..., str]
) -> None:
    identity = verifier.verify(make_token("access"))
    assert (identity.tenant_id, identity.user_id, identity.token_use, identity.client_id) == (
        "tenant-001",
        "user-123",
        "access",
        "client-abc",
    )
    assert identity.email is None and identity.groups == ()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "  Bearer"])
def test_authorization_header_scheme_is_case_insensitive(
    verifier: TokenVerifier, make_token: Callable[..., str], scheme: str
) -> None:
    assert verifier.verify(f"{scheme} {make_token()}").tenant_id == "tenant-001"


def test_id_token_with_audience_list(
    verifier: TokenVerifier, make_token: Callable[..., str]
) -> None:
    assert verifier.verify(make_token(aud=["other", "client-abc"])).client_id == "client-abc"


def test_first_configured_tenant_claim_wins(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    token = make_token(tenantId="tenant-two")  # id token also carries custom:tenantId
    assert verifier.verify(token).tenant_id == "tenant-001"
    swapped = TokenVerifier(
        verifier.issuer,
        client_ids=["client-abc"],
        jwks_url=jwks_server.url,
        tenant_claims=("tenantId", "custom:tenantId"),
    )
    assert swapped.verify(token).tenant_id == "tenant-two"


@pytest.mark.parametrize("claim", ["email", "phone_number", "custom:tier"])
def test_a_user_claim_a_user_can_change_is_refused(verifier: TokenVerifier, jwks_server: Any, claim: str) -> None:
    """The user id keys the memories: only identifiers Cognito assigns and never changes."""
    with pytest.raises(ValueError, match="user_claim"):
        TokenVerifier(verifier.issuer, client_ids=["client-abc"], jwks_url=jwks_server.url, user_claim=claim)


def test_the_username_claims_name_the_user(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]) -> None:
    by_username = TokenVerifier(verifier.issuer, client_ids=["client-abc"], jwks_url=jwks_server.url,
                                user_claim="cognito:username")
    assert by_username.verify(make_token(**{"cognito:username": "ann"})).user_id == "ann"


def test_lifetimes_up_to_the_maximum_are_accepted(verifier: TokenVerifier, make_token: Callable[..., str]) -> None:
    now = int(time.time())
    assert verifier.verify(make_token(iat=now, exp=now + 24 * 3600)).user_id == "user-123"  # Cognito's maximum
    assert verifier.verify(make_token(iat=now, exp=now + 2 * 86400)).user_id == "user-123"
    tight = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=verifier.keys, max_lifetime_seconds=600)
    with pytest.raises(AuthError, match="invalid or missing bearer token"):
        tight.verify(make_token(iat=now, exp=now + 3600))


def test_small_clock_skew_is_tolerated(
    verifier: TokenVerifier, make_token: Callable[..., str]
) -> None:
    now = int(time.time())
    assert verifier.verify(make_token(exp=now - 3, iat=now + 3, nbf=now + 3)).user_id == "user-123"


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda mk, kb: mk(exp=int(time.time()) - 120), "expired"),
        (lambda mk, kb: mk(nbf=int(time.time()) + 600), "not_yet_valid"),
        (lambda mk, kb: mk(iat=int(time.time()) + 600), "not_yet_valid"),
        (lambda mk, kb: mk(iss="https://evil.example/pool"), "wrong_issuer"),
        (lambda mk, kb: mk(aud="other-client"), "wrong_audience"),
        (lambda mk, kb: mk(drop=("aud",)), "wrong_audience"),
        (lambda mk, kb: mk("access", client_id="other-client"), "wrong_client"),
        (lambda mk, kb: mk("access", drop=("client_id",)), "wrong_client"),
        (lambda mk, kb: mk(token_use="refresh"), "wrong_token_use"),
        (lambda mk, kb: mk(drop=("token_use",)), "malformed"),
        (lambda mk, kb: mk(drop=("custom:tenantId",)), "missing_tenant"),
        (lambda mk, kb: mk("access", drop=("tenantId",)), "missing_tenant"),
        (lambda mk, kb: mk(**{"custom:tenantId": "Tenant_001"}), "invalid_tenant"),
        (lambda mk, kb: mk(**{"custom:tenantId": "../tenant"}), "invalid_tenant"),
        (lambda mk, kb: mk(**{"custom:tenantId": ""}), "invalid_tenant"),
        (lambda mk, kb: mk(**{"custom:tenantId": 7}), "invalid_tenant"),
        (lambda mk, kb: mk(drop=("sub",)), "malformed"),
        (lambda mk, kb: mk(drop=("exp",)), "malformed"),
        (lambda mk, kb: mk(drop=("iat",)), "malformed"),
        (lambda mk, kb: mk(drop=("iss",)), "malformed"),
        (lambda mk, kb: mk(key=kb), "bad_signature"),  # wrong key, kid of key A
        (lambda mk, kb: mk(kid=None), "malformed"),
        (lambda mk, kb: mk(kid="no-such-key"), "unknown_key"),
        (lambda mk, kb: mk(exp=int(time.time()) + 10 * 365 * 86400), "lifetime_too_long"),
        (lambda mk, kb: mk(exp=int(time.time()) + 2 * 86400 + 60), "lifetime_too_long"),
    ],
)
def test_rejected_claims(
    verifier: TokenVerifier,
    make_token: Callable[..., str],
    key_b: Any,
    build: Callable[..., str],
    reason: str,
) -> None:
    assert _reason(verifier, build(make_token, key_b)) == reason


def test_access_tokens_rejected_when_only_id_tokens_accepted(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    id_only = TokenVerifier(
        verifier.issuer, client_ids=["client-abc"], token_uses=("id",), jwks_url=jwks_server.url
    )
    assert id_only.verify(make_token()).token_use == "id"
    assert _reason(id_only, make_token("access")) == "wrong_token_use"


def test_tampered_payload_is_bad_signature(
    verifier: TokenVerifier, make_token: Callable[..., str], claims_for: Callable[..., dict]
) -> None:
    header, _, signature = make_token().split(".")
    forged = _segment(claims_for(**{"custom:tenantId": "tenant-999"}))
    assert _reason(verifier, f"{header}.{forged}.{signature}") == "bad_signature"


def test_alg_none_is_rejected(verifier: TokenVerifier, claims_for: Callable[..., dict]) -> None:
    unsigned = jwt.encode(claims_for(), None, algorithm="none", headers={"kid": "key-a"})
    assert _reason(verifier, unsigned) == "bad_signature"
    header = _segment({"alg": "RS256", "kid": "key-a", "typ": "JWT"})
    assert _reason(verifier, f"{header}.{_segment(claims_for())}.") == "bad_signature"


def test_hs256_signed_with_public_key_is_rejected(
    verifier: TokenVerifier, key_a: Any, claims_for: Callable[..., dict]
) -> None:
    public_pem = key_a.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for alg in ("HS256", "RS256"):  # honest header, and a header that lies about the algorithm
        signing_input = (
            f"{_segment({'alg': alg, 'kid': 'key-a', 'typ': 'JWT'})}.{_segment(claims_for())}"
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        assert _reason(verifier, f"{signing_input}.{_b64(mac)}") == "bad_signature"


@pytest.mark.parametrize("value", [None, "", "   ", "Bearer", "Bearer   "])
def test_missing_token(verifier: TokenVerifier, value: str | None) -> None:
    assert _reason(verifier, value) == "no_token"


@pytest.mark.parametrize(
    "value",
    ["not-a-jwt", "a.b.c", "Basic dXNlcjpwYXNz", "Bearer a b", "x" * 20_000, "e30.e30.e30"],
)
def test_malformed_token(verifier: TokenVerifier, value: str) -> None:
    assert _reason(verifier, value) == "malformed"


def test_errors_and_logs_never_contain_the_token(
    verifier: TokenVerifier,
    make_token: Callable[..., str],
    key_b: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [
        make_token(exp=int(time.time()) - 120),
        make_token(key=key_b),
        make_token(kid="no-such-key"),
        make_token(drop=("custom:tenantId",)),
        make_token(**{"custom:tenantId": "EVIL_TENANT"}),
    ]
    reasons = []
    for token in tokens:
        with pytest.raises(AuthError) as info:
            verifier.verify(f"Bearer {token}")
        err = info.value
        reasons.append(err.reason)
        assert err.status_code == 401
        assert str(err) == "invalid or missing bearer token"
        for text in (str(err), repr(err), *map(str, err.args)):
            assert token not in text and token.split(".")[2] not in text
        assert "EVIL_TENANT" not in repr(err)
    for token in tokens:
        assert token.split(".")[1] not in caplog.text
        assert token.split(".")[2] not in caplog.text
    assert "EVIL_TENANT" not in caplog.text
    logged = [r.auth_reason for r in caplog.records if hasattr(r, "auth_reason")]
    assert logged == reasons
