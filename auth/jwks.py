"""Where the issuer's public keys come from: a JWKS URL (cached, bounded refresh) or a local file."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKClientError, PyJWKSet

from auth.errors import AuthError, AuthUnavailable

logger = logging.getLogger(__name__)

#: The part of a key set's lifespan, at its end, in which a request that finds its key still
#: starts a refresh in the background (one at a time, at most one per refresh interval): a
#: failing endpoint then costs nothing while the set is valid, instead of 503s for a refresh
#: interval once it expired.
REFRESH_AHEAD_FRACTION = 0.1


class KeySource(Protocol):
    """Returns the public signing key for a ``kid``; raises AuthError when there is none."""

    def signing_key(self, kid: str) -> PyJWK:
        """The key whose id is ``kid`` (``unknown_key`` / ``jwks_unavailable`` otherwise)."""
        ...


class JwksUrlKeys:
    """Keys from an issuer's JWKS endpoint (fetched with pyjwt's ``PyJWKClient``), cached here.

    pyjwt's own caches do not fit (read in pyjwt 2.15 ``jwks_client.py``): its per-``kid`` LRU
    cache never expires, so a key removed from the JWKS keeps verifying, and its unknown-kid
    cooldown starts only after a *successful* fetch, so while the endpoint fails every token
    with an unknown ``kid`` triggers another (serialised, ``timeout_seconds`` long) fetch.
    Here the whole key set is one cache entry with a lifetime of ``lifespan_seconds``; one fetch
    runs at a time (concurrent callers wait for its outcome); and after any fetch attempt,
    success or failure, the next happens no sooner than ``refresh_interval_seconds`` later,
    except the one refresh of a set that has just expired.

    Refresh ahead: in the last ``REFRESH_AHEAD_FRACTION`` of the set's lifespan, a request whose
    key the set holds starts a refresh on a daemon thread if none is under way and one is due,
    and is answered with that key at once (the set is still valid); a successful refresh
    replaces the set (a key the JWKS no longer lists stops verifying then), a failed one leaves
    it valid until its lifespan ends. A request finding the set expired meanwhile waits for
    that refresh's outcome like any concurrent caller. So an endpoint
    failing briefly answers no request with 503 unless it fails for the whole window. Serving an
    expired set while the endpoint fails would keep a removed key verifying past the lifespan,
    exactly while the issuer cannot be reached: never done.

    Answers: a ``kid`` in a fresh set -> its key; a ``kid`` not in a fresh set -> ``unknown_key``
    (401); no fresh set (never fetched, expired, fetch failed) -> ``jwks_unavailable`` (503).
    """

    def __init__(
        self,
        url: str,
        *,
        lifespan_seconds: float = 3600.0,
        refresh_interval_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lifespan_seconds <= 0 or refresh_interval_seconds < 0:
            raise ValueError("lifespan_seconds must be > 0 and refresh_interval_seconds >= 0")
        self.url = url
        self.lifespan_seconds = lifespan_seconds
        self.refresh_interval_seconds = refresh_interval_seconds
        self._client = PyJWKClient(url, cache_keys=False, cache_jwk_set=False, timeout=timeout_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at: float | None = None
        self._attempted_at: float | None = None

    def signing_key(self, kid: str) -> PyJWK:
        """The key for ``kid`` from a fresh key set, fetching one when due (see the class doc)."""
        key = self._fresh_key(kid)
        if key is not None:
            if self._ahead_due(self._clock()):
                self._refresh_in_background()
            return key
        with self._lock:  # one fetch at a time; a waiter sees the outcome of the one before it
            key = self._fresh_key(kid)
            if key is not None:
                return key
            return self._key_after_fetch(kid)

    def _ahead_due(self, now: float) -> bool:
        """Whether a fresh set is in its refresh-ahead window with no attempt for an interval."""
        if self._loaded_at is None or self._attempted_at is None:
            return False
        window_starts = self._loaded_at + self.lifespan_seconds * (1.0 - REFRESH_AHEAD_FRACTION)
        return now >= window_starts and now - self._attempted_at >= self.refresh_interval_seconds

    def _refresh_in_background(self) -> None:
        """Start a refresh ahead of expiry on a daemon thread, which holds the lock until its
        fetch ends; nothing if a fetch is under way or one ran since the caller's check. A thread
        that cannot start is a failed attempt (logged; tried again after the refresh interval)."""
        if not self._lock.acquire(blocking=False):
            return  # another fetch is under way: the set it replaces is still valid
        now = self._clock()
        if not self._ahead_due(now):
            self._lock.release()
            return
        self._attempted_at = now
        try:
            threading.Thread(target=self._fetch_then_release, args=(now,), name="jwks-refresh", daemon=True).start()
        except RuntimeError as exc:  # "can't start new thread": the set is valid, so is the request
            self._lock.release()
            logger.warning("JWKS refresh ahead not started: %s", type(exc).__name__, extra={"jwks_url": self.url})
        except BaseException:  # no thread: nobody else would release the lock
            self._lock.release()
            raise

    def _fetch_then_release(self, now: float) -> None:
        try:
            self._fetch(now)
        finally:
            self._lock.release()

    def _key_after_fetch(self, kid: str) -> PyJWK:
        """Under the lock: fetch the set if due, then ``kid``'s key from a fresh set;
        ``unknown_key`` if a fresh set lacks it, ``jwks_unavailable`` if no set is fresh."""
        now = self._clock()
        if self._fetch_due(now):
            self._attempted_at = now
            self._fetch(now)
        key = self._fresh_key(kid)
        if key is not None:
            return key
        if self._is_fresh():
            raise AuthError("unknown_key")
        raise AuthUnavailable()

    def _fetch_due(self, now: float) -> bool:
        if self._attempted_at is None or now - self._attempted_at >= self.refresh_interval_seconds:
            return True
        # The set expired since the last attempt: refresh it once, whatever the interval.
        return self._loaded_at is not None and self._attempted_at < self._loaded_at + self.lifespan_seconds <= now

    def _is_fresh(self) -> bool:
        return self._loaded_at is not None and self._clock() - self._loaded_at < self.lifespan_seconds

    def _fresh_key(self, kid: str) -> PyJWK | None:
        return self._keys.get(kid) if self._is_fresh() else None

    def _fetch(self, now: float) -> None:
        try:
            keys = signing_keys(PyJWKSet.from_dict(self._client.fetch_data()))
        except (PyJWKClientError, jwt.PyJWKSetError, jwt.InvalidKeyError, ValueError, OSError) as exc:
            # PyJWKClientConnectionError is a PyJWKClientError; ValueError: a non-JSON body;
            # OSError: a connection reset while the response is read (urllib does not wrap it).
            logger.warning("JWKS fetch failed: %s", type(exc).__name__, extra={"jwks_url": self.url})
            return
        self._keys, self._loaded_at = keys, now


def signing_keys(jwk_set: PyJWKSet) -> dict[str, PyJWK]:
    """The signature keys of a JWK set by ``kid`` (keys without a kid or for encryption dropped)."""
    return {k.key_id: k for k in jwk_set.keys if k.key_id and k.public_key_use in ("sig", None)}


class JwksFileKeys:
    """Keys from a local JWKS file (offline use); re-read only when the file changes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._mtime_ns: int | None = None
        self._keys: dict[str, PyJWK] = {}
        self._reload()

    def signing_key(self, kid: str) -> PyJWK:
        """The key for ``kid``; an unknown id re-reads the file if it changed since last read."""
        key = self._keys.get(kid)
        if key is None and self._changed():
            try:
                self._reload()
            except (OSError, ValueError, jwt.PyJWKSetError):
                logger.warning("JWKS file unreadable", extra={"jwks_file": str(self.path)})
            key = self._keys.get(kid)
        if key is None:
            raise AuthError("unknown_key")
        return key

    def _changed(self) -> bool:
        try:
            return self.path.stat().st_mtime_ns != self._mtime_ns
        except OSError:
            return False

    def _reload(self) -> None:
        with self._lock:
            mtime_ns = self.path.stat().st_mtime_ns
            jwk_set = PyJWKSet.from_dict(json.loads(self.path.read_text(encoding="utf-8")))
            self._keys = signing_keys(jwk_set)
            self._mtime_ns = mtime_ns
