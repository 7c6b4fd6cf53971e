"""Where the issuer's public keys come from: a JWKS URL (cached, bounded refresh) or a local file."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKClientConnectionError, PyJWKClientError, PyJWKSet

from auth.errors import AuthError, AuthUnavailable

logger = logging.getLogger(__name__)


class KeySource(Protocol):
    """Returns the public signing key for a ``kid``; raises AuthError when there is none."""

    def signing_key(self, kid: str) -> PyJWK:
        """The key whose id is ``kid`` (``unknown_key`` / ``jwks_unavailable`` otherwise)."""
        ...


class JwksUrlKeys:
    """Keys from an issuer's JWKS endpoint through pyjwt's ``PyJWKClient``.

    Keys are cached per ``kid`` (``cache_keys``) and the whole set for ``lifespan_seconds``.
    An unknown ``kid`` forces at most one refetch per ``refresh_interval_seconds`` (pyjwt's
    cooldown), so a flood of tokens with made-up key ids cannot hammer the endpoint.
    """

    def __init__(
        self,
        url: str,
        *,
        lifespan_seconds: float = 3600.0,
        refresh_interval_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        max_cached_keys: int = 16,
    ) -> None:
        self.url = url
        self._client = PyJWKClient(
            url,
            cache_keys=True,
            max_cached_keys=max_cached_keys,
            cache_jwk_set=True,
            lifespan=lifespan_seconds,
            timeout=timeout_seconds,
            cooldown_duration=refresh_interval_seconds,
        )

    def signing_key(self, kid: str) -> PyJWK:
        """The key for ``kid``, fetching the JWKS on first use and on a bounded refresh."""
        try:
            return self._client.get_signing_key(kid)
        except PyJWKClientConnectionError:
            logger.warning("JWKS fetch failed", extra={"jwks_url": self.url})
            raise AuthUnavailable() from None
        except (PyJWKClientError, jwt.PyJWKSetError, jwt.InvalidKeyError):
            raise AuthError("unknown_key") from None


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
            self._keys = {
                k.key_id: k for k in jwk_set.keys if k.key_id and k.public_key_use in ("sig", None)
            }
            self._mtime_ns = mtime_ns
