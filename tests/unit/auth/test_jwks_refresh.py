"""JWKS fetching through PyJWKClient: cached keys, one refresh for a rotated key, floods bounded.

Time is a fake clock: pyjwt reads ``time.monotonic()`` in ``jwt.jwks_client`` (fetch cooldown),
``jwt.jwk_set_cache`` (cache lifespan) and ``jwt.api_jwk`` (set timestamps) and nothing else, so
the tests move that clock instead of sleeping through a short real window.
"""

from __future__ import annotations

import types
import uuid
from typing import Any, Callable

import pytest

from auth import AuthError, AuthUnavailable, TokenVerifier

INTERVAL = 30.0  # seconds between forced refreshes (the default)


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    for module in ("jwt.jwks_client", "jwt.jwk_set_cache", "jwt.api_jwk"):
        monkeypatch.setattr(f"{module}.time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def fast_verifier(verifier: TokenVerifier, jwks_server: Any, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(
        verifier.issuer,
        client_ids=verifier.client_ids,
        jwks_url=jwks_server.url,
        jwks_refresh_interval_seconds=INTERVAL,
    )


def _reject_reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as info:
        verifier.verify(token)
    return info.value.reason


def test_jwks_fetched_once_for_many_tokens(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    assert jwks_server.fetches == 0  # nothing fetched at construction
    for n in range(50):
        assert verifier.verify(make_token(sub=f"user-{n}")).user_id == f"user-{n}"
    assert jwks_server.fetches == 1


def test_rotated_key_refreshes_once_and_unknown_kids_do_not_refetch(
    fast_verifier: TokenVerifier,
    jwks_server: Any,
    make_token: Callable[..., str],
    key_a: Any,
    key_b: Any,
    clock: FakeClock,
) -> None:
    fast_verifier.verify(make_token())
    assert jwks_server.fetches == 1

    clock.advance(INTERVAL + 1)
    jwks_server.publish(("key-a", key_a), ("key-b", key_b))  # the issuer rotates in key B
    rotated = make_token(key=key_b, kid="key-b")
    assert fast_verifier.verify(rotated).tenant_id == "tenant-001"
    assert jwks_server.fetches == 2  # exactly one refresh for the new kid
    for _ in range(20):
        fast_verifier.verify(rotated)
    assert jwks_server.fetches == 2  # and then served from the key cache

    # A flood of made-up kids within the interval after a refresh: no fetch at all.
    clock.advance(INTERVAL - 1)
    for _ in range(100):
        assert _reject_reason(fast_verifier, make_token(kid=uuid.uuid4().hex)) == "unknown_key"
    assert jwks_server.fetches == 2

    # Once the interval has passed, the same flood costs exactly one fetch.
    clock.advance(2)
    for _ in range(100):
        assert _reject_reason(fast_verifier, make_token(kid=uuid.uuid4().hex)) == "unknown_key"
    assert jwks_server.fetches == 3
    assert fast_verifier.verify(make_token()).user_id == "user-123"  # known keys still work


def test_new_kid_within_refresh_interval_waits_for_it(
    fast_verifier: TokenVerifier,
    jwks_server: Any,
    make_token: Callable[..., str],
    key_a: Any,
    key_b: Any,
    clock: FakeClock,
) -> None:
    fast_verifier.verify(make_token())
    jwks_server.publish(("key-a", key_a), ("key-b", key_b))
    clock.advance(INTERVAL - 1)
    assert _reject_reason(fast_verifier, make_token(key=key_b, kid="key-b")) == "unknown_key"
    assert jwks_server.fetches == 1  # the interval has not elapsed
    clock.advance(1)
    assert fast_verifier.verify(make_token(key=key_b, kid="key-b")).tenant_id == "tenant-001"
    assert jwks_server.fetches == 2


def test_unreachable_jwks_is_503_not_401(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    jwks_server.fail = True
    with pytest.raises(AuthUnavailable) as info:
        verifier.verify(make_token())
    assert (info.value.reason, info.value.status_code) == ("jwks_unavailable", 503)
