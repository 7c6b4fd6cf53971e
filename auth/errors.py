"""Exception hierarchy of the auth package: a reason code for logs, a generic message for callers.

No exception in this module ever carries the token, a claim value or key material: ``reason``
is one of :data:`REASONS` and ``str(error)`` is the generic :attr:`AuthError.public_message`.
"""

from __future__ import annotations

from typing import Literal, get_args

Reason = Literal[
    "no_token",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "lifetime_too_long",
    "wrong_issuer",
    "wrong_audience",
    "wrong_client",
    "wrong_token_use",
    "missing_tenant",
    "invalid_tenant",
    "unknown_key",
    "jwks_unavailable",
]
#: Every reason code an AuthError may carry.
REASONS: frozenset[str] = frozenset(get_args(Reason))


class AuthError(Exception):
    """The bearer token is missing or was rejected; maps to HTTP 401 at the app edge."""

    status_code: int = 401
    public_message: str = "invalid or missing bearer token"

    def __init__(self, reason: Reason) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown auth error reason {reason!r}")
        super().__init__(self.public_message)
        self.reason: Reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r})"


class AuthUnavailable(AuthError):
    """The issuer's keys could not be fetched: not the caller's fault, maps to HTTP 503."""

    status_code = 503
    public_message = "token verification is temporarily unavailable"

    def __init__(self) -> None:
        super().__init__("jwks_unavailable")
