"""Verify a bearer token (RS256 JWT from Cognito or the dev issuer) and map it to an Identity."""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Mapping

import jwt

import telemetry
from auth.errors import AuthError, Reason
from auth.identity import Identity
from auth.jwks import JwksFileKeys, JwksUrlKeys, KeySource
from auth.metrics import token_rejected

logger = logging.getLogger(__name__)

#: The only signature algorithm accepted (Cognito signs with RS256).
ALGORITHMS = ("RS256",)
#: Longer "tokens" are rejected before any parsing.
MAX_TOKEN_LENGTH = 16_384
#: Longest accepted ``exp - iat``: Cognito's id and access tokens live at most 1 day.
MAX_TOKEN_LIFETIME_SECONDS = 2 * 24 * 3600
_REQUIRED_CLAIMS = ("exp", "iat", "iss", "token_use")
#: Claims that may name the user, whose memories are keyed by it: identifiers Cognito assigns
#: and a user cannot change. ``email`` (which the app client lets a user write), ``phone_number``
#: or a custom attribute would let a user take another's value, and with it those memories.
USER_CLAIMS = ("sub", "cognito:username", "username")

# pyjwt exception -> reason code; subclasses first (ExpiredSignatureError is a DecodeError...).
_DECODE_ERRORS: tuple[tuple[type[Exception], Reason], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not_yet_valid"),
    (jwt.InvalidIssuerError, "wrong_issuer"),
    (jwt.InvalidAlgorithmError, "bad_signature"),
    (jwt.InvalidSignatureError, "bad_signature"),
    (jwt.InvalidKeyError, "bad_signature"),
    (jwt.InvalidTokenError, "malformed"),
)


def cognito_issuer(region: str, user_pool_id: str) -> str:
    """The ``iss`` of a Cognito user pool's tokens."""
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


class TokenVerifier:
    """Verifies bearer tokens against one issuer and returns the caller's :class:`Identity`.

    Signature (RS256 only) against the issuer's JWKS, ``exp``/``iat``/``nbf`` with
    ``leeway_seconds``, ``iss``, ``token_use`` in ``token_uses``, and ``aud`` (id tokens) or
    ``client_id`` (access tokens) in ``client_ids``, and a lifetime (``exp - iat``) of at most
    ``max_lifetime_seconds`` (a leaked long-lived token is refused even if correctly signed). The
    user is ``user_claim`` (one of :data:`USER_CLAIMS`); the tenant is the first of
    ``tenant_claims`` present; a token without one is rejected, never given a default. Exactly one of ``jwks_url`` / ``jwks_file`` / ``key_source`` must be given;
    a JWKS URL's key set is cached for ``jwks_lifespan_seconds``, refreshed in the last tenth of
    it, and refetched at most once per ``jwks_refresh_interval_seconds`` (:class:`auth.jwks.JwksUrlKeys`).
    """

    def __init__(
        self,
        issuer: str,
        *,
        client_ids: Iterable[str],
        token_uses: Iterable[str] = ("id", "access"),
        jwks_url: str | None = None,
        jwks_file: str | os.PathLike[str] | None = None,
        key_source: KeySource | None = None,
        tenant_claims: Iterable[str] = ("custom:tenantId", "tenantId"),
        user_claim: str = "sub",
        tenant_name_claims: Iterable[str] = ("custom:tenantName", "tenantName"),
        tier_claims: Iterable[str] = ("custom:tier", "tier"),
        groups_claim: str = "cognito:groups",
        leeway_seconds: float = 10.0,
        max_lifetime_seconds: float = MAX_TOKEN_LIFETIME_SECONDS,
        jwks_lifespan_seconds: float = 3600.0,
        jwks_refresh_interval_seconds: float = 30.0,
    ) -> None:
        sources = [s for s in (jwks_url, jwks_file, key_source) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of jwks_url, jwks_file, key_source")
        self.issuer = issuer
        self.client_ids = frozenset(client_ids)
        self.token_uses = frozenset(token_uses)
        if not self.client_ids or not self.token_uses:
            raise ValueError("client_ids and token_uses must not be empty")
        if not self.token_uses <= {"id", "access"}:
            raise ValueError("token_uses may only contain 'id' and 'access'")
        if user_claim not in USER_CLAIMS:
            raise ValueError(f"user_claim must be one of {', '.join(USER_CLAIMS)} (a claim the user cannot change)")
        self.tenant_claims = tuple(tenant_claims)
        self.user_claim = user_claim
        self.tenant_name_claims = tuple(tenant_name_claims)
        self.tier_claims = tuple(tier_claims)
        self.groups_claim = groups_claim
        self.leeway_seconds = leeway_seconds
        self.max_lifetime_seconds = max_lifetime_seconds
        if key_source is not None:
            self.keys: KeySource = key_source
        elif jwks_url is not None:
            self.keys = JwksUrlKeys(
                jwks_url,
                lifespan_seconds=jwks_lifespan_seconds,
                refresh_interval_seconds=jwks_refresh_interval_seconds,
            )
        else:
            self.keys = JwksFileKeys(jwks_file)  # type: ignore[arg-type]

    @classmethod
    def for_cognito(
        cls, region: str, user_pool_id: str, client_ids: Iterable[str], **kwargs: Any
    ) -> "TokenVerifier":
        """A verifier for a Cognito user pool (issuer and JWKS URL derived from region + pool)."""
        issuer = cognito_issuer(region, user_pool_id)
        if kwargs.get("jwks_file") is None and kwargs.get("key_source") is None:
            kwargs.setdefault("jwks_url", f"{issuer}/.well-known/jwks.json")
        return cls(issuer, client_ids=client_ids, **kwargs)

    def verify(self, token_or_authorization_header: str | None) -> Identity:
        """The Identity of a valid token (raw or ``Bearer <token>``); AuthError otherwise."""
        with telemetry.span("auth.verify_token") as span:
            try:
                identity = self._verify(token_or_authorization_header)
            except AuthError as exc:
                # Only the fixed reason code: never the token, its claims or its header values.
                logger.info("bearer token rejected: %s", exc.reason, extra={"auth_reason": exc.reason})
                token_rejected(exc.reason)
                raise
            telemetry.annotate(span, {telemetry.TENANT: identity.tenant_id, "auth.token.use": identity.token_use})
            return identity

    def _verify(self, value: str | None) -> Identity:
        token = _extract_token(value)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise AuthError("malformed") from None
        if "alg" not in header:
            raise AuthError("malformed")
        if header["alg"] not in ALGORITHMS:
            raise AuthError("bad_signature")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("malformed")
        key = self.keys.signing_key(kid)
        claims = self._decode(token, key)
        self._check_lifetime(claims)
        client_id = self._check_client(claims)
        return self._identity(claims, client_id)

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_aud": False,  # checked per token_use in _check_client
                },
            )
        except jwt.InvalidTokenError as exc:
            raise AuthError(_reason_for(exc)) from None

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        """``exp - iat`` within the maximum (pyjwt accepted both as ``int(...)``-convertible)."""
        try:
            lifetime = int(claims["exp"]) - int(claims["iat"])
        except (TypeError, ValueError, OverflowError):
            raise AuthError("malformed") from None
        if lifetime > self.max_lifetime_seconds:
            raise AuthError("lifetime_too_long")

    def _check_client(self, claims: Mapping[str, Any]) -> str:
        """The accepted client id (``aud`` of id tokens, ``client_id`` of access tokens)."""
        token_use = claims.get("token_use")
        if not isinstance(token_use, str) or token_use not in self.token_uses:
            raise AuthError("wrong_token_use")
        if token_use == "id":
            aud = claims.get("aud")
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            accepted = (a for a in audiences if isinstance(a, str) and a in self.client_ids)
            matched = next(accepted, None)
            if matched is None:
                raise AuthError("wrong_audience")
            return matched
        client_id = claims.get("client_id")
        if not isinstance(client_id, str) or client_id not in self.client_ids:
            raise AuthError("wrong_client")
        return client_id

    def _identity(self, claims: Mapping[str, Any], client_id: str) -> Identity:
        tenant = _first_claim(claims, self.tenant_claims)
        if tenant is None:
            raise AuthError("missing_tenant")
        if not isinstance(tenant, str):
            raise AuthError("invalid_tenant")
        user = claims.get(self.user_claim)
        groups = claims.get(self.groups_claim) or ()
        if not isinstance(user, str) or not isinstance(groups, (list, tuple)):
            raise AuthError("malformed")
        return Identity(
            tenant_id=tenant,
            user_id=user,
            tenant_name=_optional_str(_first_claim(claims, self.tenant_name_claims)),
            tier=_optional_str(_first_claim(claims, self.tier_claims)),
            groups=tuple(groups),
            email=_optional_str(claims.get("email")),
            token_use=claims["token_use"],
            client_id=client_id,
        )


def _extract_token(value: str | None) -> str:
    """The token from a raw token or an ``Authorization`` header value (scheme Bearer)."""
    if value is None or not value.strip():
        raise AuthError("no_token")
    if len(value) > MAX_TOKEN_LENGTH:
        raise AuthError("malformed")
    parts = value.split()
    if len(parts) == 2 and parts[0].lower() == "bearer":
        token = parts[1]
    elif len(parts) == 1 and parts[0].lower() == "bearer":
        raise AuthError("no_token")
    elif len(parts) == 1:
        token = parts[0]
    else:
        raise AuthError("malformed")
    if not token.isascii():  # a JWT is base64url and dots; pyjwt cannot even encode a lone surrogate
        raise AuthError("malformed")
    return token


def _first_claim(claims: Mapping[str, Any], names: Iterable[str]) -> Any:
    return next((claims[n] for n in names if n in claims), None)


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _reason_for(exc: Exception) -> Reason:
    return next(reason for cls, reason in _DECODE_ERRORS if isinstance(exc, cls))
