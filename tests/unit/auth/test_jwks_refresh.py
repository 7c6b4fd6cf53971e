"""JWKS fetching: cached key set with a lifetime, one refresh for a rotated key, floods and
endpoint failures bounded by the refresh interval."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Callable

import pytest

from auth import AuthError, AuthUnavailable, TokenVerifier
from auth.jwks import JwksUrlKeys

INTERVAL = 0.2  # seconds between forced refreshes in these tests


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fast_verifier(verifier: TokenVerifier, jwks_server: Any, clock: Clock) -> TokenVerifier:
    keys = JwksUrlKeys(jwks_server.url, refresh_interval_seconds=INTERVAL, lifespan_seconds=3600, clock=clock)
    return TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)


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
    clock: Clock,
) -> None:
    fast_verifier.verify(make_token())
    assert jwks_server.fetches == 1

    clock.now += INTERVAL * 1.5
    jwks_server.publish(("key-a", key_a), ("key-b", key_b))  # the issuer rotates in key B
    rotated = make_token(key=key_b, kid="key-b")
    assert fast_verifier.verify(rotated).tenant_id == "tenant-001"
    assert jwks_server.fetches == 2  # exactly one refresh for the new kid
    for _ in range(20):
        fast_verifier.verify(rotated)
    assert jwks_server.fetches == 2  # and then served from the key cache

    # A flood of made-up kids right after a refresh: no fetch at all.
    for _ in range(100):
        assert _reject_reason(fast_verifier, make_token(kid=uuid.uuid4().hex)) == "unknown_key"
    assert jwks_server.fetches == 2

    # Once the interval has passed, the same flood costs exactly one fetch.
    clock.now += INTERVAL * 1.5
    for _ in range(100):
        assert _reject_reason(fast_verifier, make_token(kid=uuid.uuid4().hex)) == "unknown_key"
    assert jwks_server.fetches == 3
    assert fast_verifier.verify(make_token()).user_id == "user-123"  # known keys still work


def test_new_kid_within_refresh_interval_waits_for_it(
    verifier: TokenVerifier,
    jwks_server: Any,
    make_token: Callable[..., str],
    key_a: Any,
    key_b: Any,
) -> None:
    verifier.verify(make_token())
    jwks_server.publish(("key-a", key_a), ("key-b", key_b))
    assert _reject_reason(verifier, make_token(key=key_b, kid="key-b")) == "unknown_key"
    assert jwks_server.fetches == 1  # default interval (30 s) has not elapsed


def test_unreachable_jwks_is_503_not_401(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    jwks_server.fail = True
    with pytest.raises(AuthUnavailable) as info:
        verifier.verify(make_token())
    assert (info.value.reason, info.value.status_code) == ("jwks_unavailable", 503)


def test_failing_endpoint_is_fetched_once_per_interval_whatever_the_flood(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str]
) -> None:
    """pyjwt alone refetches for every unknown-kid token while the endpoint fails (10 -> 10)."""
    slow = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, jwks_url=jwks_server.url)
    jwks_server.fail = True
    tokens = [make_token(kid=uuid.uuid4().hex) for _ in range(10)]
    errors: list[AuthError] = []

    def call(token: str) -> None:
        try:
            slow.verify(token)
        except AuthError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert jwks_server.fetches == 1
    assert [e.status_code for e in errors] == [503] * 10  # no key set at all: not the callers' fault


def test_unknown_kid_is_401_while_a_refresh_fails(
    fast_verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], clock: Clock
) -> None:
    fast_verifier.verify(make_token())
    jwks_server.fail = True
    clock.now += INTERVAL * 1.5
    for _ in range(10):
        assert _reject_reason(fast_verifier, make_token(kid=uuid.uuid4().hex)) == "unknown_key"
    assert jwks_server.fetches == 2  # one failed refresh for the ten
    assert fast_verifier.verify(make_token()).user_id == "user-123"  # the fresh set still serves


def test_a_key_removed_from_the_jwks_stops_verifying_after_the_lifespan(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], key_b: Any, clock: Clock
) -> None:
    """pyjwt's per-kid cache (cache_keys=True) never expires: the removed key kept verifying."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=300, refresh_interval_seconds=30, clock=clock)
    short = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    assert short.verify(token).user_id == "user-123"
    jwks_server.publish(("key-b", key_b))  # the issuer drops key A
    clock.now += 269
    assert short.verify(token).user_id == "user-123"  # within the lifespan: the cached set
    assert jwks_server.fetches == 1
    clock.now += 32
    assert _reject_reason(short, token) == "unknown_key"
    assert jwks_server.fetches == 2


def _refresh_done(keys: JwksUrlKeys) -> None:
    """Wait for a background refresh under way, if any (it holds the fetch lock until done)."""
    with keys._lock:
        pass


def test_a_key_removed_from_the_jwks_stops_verifying_at_the_refresh_ahead_of_expiry(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], key_b: Any, clock: Clock
) -> None:
    """In the last tenth of the lifespan a request whose key the set holds starts a refresh
    (answered with the still valid set): the refreshed set then replaces the cached one, so a
    removed key is refused from then on, before the lifespan ends."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=300, refresh_interval_seconds=30, clock=clock)
    short = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    assert short.verify(token).user_id == "user-123"
    jwks_server.publish(("key-b", key_b))  # the issuer drops key A
    clock.now += 280
    assert short.verify(token).user_id == "user-123"  # the set is valid still
    _refresh_done(keys)
    assert jwks_server.fetches == 2
    assert _reject_reason(short, token) == "unknown_key"
    assert jwks_server.fetches == 2


def test_a_refresh_ahead_of_expiry_rides_out_a_failing_endpoint(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], clock: Clock
) -> None:
    """The set is refreshed before it expires, a failure there costing nothing (the set is still
    valid): an endpoint failing at the moment of expiry, which answered every request 503 for
    a refresh interval, is then no outage as long as one refresh in the window succeeded."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=600, refresh_interval_seconds=30, clock=clock)
    strict = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    strict.verify(token)
    jwks_server.fail = True
    clock.now += 545  # the last tenth of the lifespan: a refresh is tried, fails, the set serves
    assert strict.verify(token).user_id == "user-123"
    _refresh_done(keys)
    assert jwks_server.fetches == 2
    clock.now += 10  # within the refresh interval: no new attempt
    assert strict.verify(token).user_id == "user-123"
    _refresh_done(keys)
    assert jwks_server.fetches == 2
    jwks_server.fail = False
    clock.now += 25  # due again: this refresh succeeds (a new set, a new lifespan)
    assert strict.verify(token).user_id == "user-123"
    _refresh_done(keys)
    assert jwks_server.fetches == 3
    jwks_server.fail = True
    clock.now += 21  # the first set's lifespan is over, its successor serves
    for _ in range(5):
        assert strict.verify(token).user_id == "user-123"
    assert jwks_server.fetches == 3


def test_the_verifier_gives_its_lifespan_and_interval_to_the_url_key_source(
    verifier: TokenVerifier, jwks_server: Any
) -> None:
    built = TokenVerifier(
        verifier.issuer, client_ids=verifier.client_ids, jwks_url=jwks_server.url,
        jwks_lifespan_seconds=123, jwks_refresh_interval_seconds=7,
    )  # fmt: skip
    assert isinstance(built.keys, JwksUrlKeys)
    assert (built.keys.lifespan_seconds, built.keys.refresh_interval_seconds) == (123, 7)


def test_an_expired_key_set_is_503_while_the_endpoint_fails(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], clock: Clock
) -> None:
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=60, refresh_interval_seconds=30, clock=clock)
    strict = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    strict.verify(token)
    jwks_server.fail = True
    clock.now += 61
    for _ in range(5):
        with pytest.raises(AuthUnavailable):
            strict.verify(token)
    assert jwks_server.fetches == 2
    jwks_server.fail = False
    clock.now += 31
    assert strict.verify(token).user_id == "user-123"
    assert jwks_server.fetches == 3


def _verify_in_thread(verifier: TokenVerifier, token: str) -> tuple[threading.Thread, list[Any]]:
    """Verify ``token`` on a thread; the list gets its identity or its error."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(verifier.verify(token))
        except AuthError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_no_request_waits_for_a_refresh_ahead_of_expiry(
    verifier: TokenVerifier,
    jwks_server: Any,
    make_token: Callable[..., str],
    key_a: Any,
    key_b: Any,
    clock: Clock,
) -> None:
    """The request that starts the refresh is answered with the still valid set while the
    endpoint hangs (before, it waited for the fetch: up to its 5 s timeout), and so are the
    others; once the refresh is done, the new set serves (a key it added, with no fetch)."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=600, refresh_interval_seconds=30, clock=clock)
    strict = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    strict.verify(token)
    jwks_server.publish(("key-a", key_a), ("key-b", key_b))
    jwks_server.open.clear()
    jwks_server.requested.clear()
    clock.now += 545
    try:
        refresher, outcome = _verify_in_thread(strict, token)
        refresher.join(2)
        assert jwks_server.requested.wait(2)  # the refresh is under way, held by the endpoint
        assert [o.user_id for o in outcome] == ["user-123"]  # answered without waiting for it
        assert strict.verify(token).user_id == "user-123"  # and so is the next request
    finally:
        jwks_server.open.set()
    _refresh_done(keys)
    assert strict.verify(make_token(key=key_b, kid="key-b")).user_id == "user-123"
    assert jwks_server.fetches == 2


def test_an_expired_set_is_not_served_while_a_refresh_ahead_hangs(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], clock: Clock
) -> None:
    """A request finding the set expired while the background refresh hangs waits for its
    outcome (the expired set never answers), then is answered from the refreshed set."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=600, refresh_interval_seconds=30, clock=clock)
    strict = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    strict.verify(token)
    jwks_server.open.clear()
    jwks_server.requested.clear()
    clock.now += 545
    try:
        assert strict.verify(token).user_id == "user-123"  # starts the refresh
        assert jwks_server.requested.wait(2)
        clock.now += 60  # the set's lifespan is over while the fetch hangs
        waiter, outcome = _verify_in_thread(strict, token)
        waiter.join(0.3)
        assert outcome == []  # waiting for the refresh's outcome, not served the expired set
    finally:
        jwks_server.open.set()
    waiter.join(5)
    assert [o.user_id for o in outcome] == ["user-123"]  # from the set the refresh fetched
    assert jwks_server.fetches == 2


class _ResettingEndpoint:
    """A loopback endpoint that accepts each connection, reads the request and resets it
    (RST, SO_LINGER 0) before answering: what a load balancer dropping the connection does."""

    def __init__(self) -> None:
        import socket

        self._socket = socket
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/jwks.json"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import struct

        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            conn.recv(65536)
            conn.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self.server.close()


def test_a_jwks_endpoint_resetting_the_connection_is_503_not_a_crash(
    verifier: TokenVerifier, make_token: Callable[..., str], clock: Clock
) -> None:
    """urllib lets a reset while the response is read escape as ConnectionResetError (not a
    URLError); on main it left the verifier as a 500 'internal_error' instead of 503."""
    endpoint = _ResettingEndpoint()
    try:
        keys = JwksUrlKeys(endpoint.url, refresh_interval_seconds=INTERVAL, clock=clock)
        reset = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
        for _ in range(3):
            with pytest.raises(AuthUnavailable) as info:
                reset.verify(make_token())
            assert (info.value.reason, info.value.status_code) == ("jwks_unavailable", 503)
        assert endpoint.connections == 1  # the refresh interval holds after this failure too
    finally:
        endpoint.close()


def test_a_refresh_ahead_that_cannot_start_its_thread_answers_with_the_valid_set(
    verifier: TokenVerifier, jwks_server: Any, make_token: Callable[..., str], clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread that cannot start (RuntimeError "can't start new thread": a thread limit) made the
    request that found its key in a valid set fail with a 500; it is a failed attempt of the
    refresh ahead (the fetch lock free, tried again after the refresh interval)."""
    keys = JwksUrlKeys(jwks_server.url, lifespan_seconds=600, refresh_interval_seconds=30, clock=clock)
    strict = TokenVerifier(verifier.issuer, client_ids=verifier.client_ids, key_source=keys)
    token = make_token()
    strict.verify(token)

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    clock.now += 545
    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        assert strict.verify(token).user_id == "user-123"
    assert not keys._lock.locked()
    assert strict.verify(token).user_id == "user-123"  # within the interval: not tried again
    assert jwks_server.fetches == 1
    clock.now += 30
    assert strict.verify(token).user_id == "user-123"  # due again: this one starts the refresh
    _refresh_done(keys)
    assert jwks_server.fetches == 2
