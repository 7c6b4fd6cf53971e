"""Bearer-token verification, the verified caller's identity, and a local dev issuer."""

from auth.errors import AuthError, AuthUnavailable
from auth.identity import Identity
from auth.verifier import TokenVerifier

__all__ = ["AuthError", "AuthUnavailable", "Identity", "TokenVerifier"]
