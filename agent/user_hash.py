"""Keyed pseudonyms of user ids for logs (HMAC-SHA256), so a log line never names its user.

An unsalted hash of a user id is reversible for emails and user names: hash the candidates and
compare. An HMAC needs the key. With ``AGENT_LOG_HASH_KEY`` set (a per-deployment secret) a user
has the same pseudonym across processes and restarts, so an operator who holds the key can
correlate logs; unset, each process draws a random key (correlation within one process only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets


class UserHasher:
    """Maps a user id to a 16-hex-digit HMAC-SHA256 pseudonym under one key."""

    def __init__(self, key: str | bytes | None = None) -> None:
        if isinstance(key, str):
            key = key.encode()
        self._key = key or secrets.token_bytes(32)

    def __call__(self, user_id: str) -> str:
        """The pseudonym of ``user_id``."""
        return hmac.new(self._key, user_id.encode(), hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key=<redacted>)"
