"""A local stand-in for Cognito: an RSA key and JWKS under a state directory, and minted tokens.

CLI::

    python -m auth.dev_issuer init                 # create key + JWKS (idempotent)
    python -m auth.dev_issuer mint --tenant tenant-001 --user alice [--ttl 3600] [--token-use id]
    python -m auth.dev_issuer jwks-path

``mint`` prints only the token, so ``--bearer-token "$(python -m auth.dev_issuer mint ...)"``
works. The state directory is ``$AUTH_DEV_STATE_DIR`` or ``<state root>/dev-issuer`` (the
user's state directory, outside the source tree: ``auth.local_state``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from auth.local_state import state_root
from auth.verifier import TokenVerifier
from tenant_ids import tenant_id_problem

logger = logging.getLogger(__name__)

#: ``iss`` of every dev token (the verifier must be configured with the same value).
DEV_ISSUER = "http://localhost/dev-issuer"
#: Default app client id (``aud`` of id tokens, ``client_id`` of access tokens).
DEV_CLIENT_ID = "dev-client"
STATE_DIR_ENV = "AUTH_DEV_STATE_DIR"
KEY_FILE = "private_key.pem"
JWKS_FILE = "jwks.json"
DEFAULT_TTL_SECONDS = 3600


def default_state_dir() -> Path:
    """``$AUTH_DEV_STATE_DIR`` if set, else ``<state root>/dev-issuer`` (outside the source tree)."""
    return Path(os.environ.get(STATE_DIR_ENV) or state_root() / "dev-issuer")


class DevIssuer:
    """Mints Cognito-shaped RS256 tokens with a key kept under ``state_dir`` (created on first use)."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self._private_key, self.kid = self._load_or_create()

    @property
    def key_path(self) -> Path:
        """The PEM private key (mode 0600)."""
        return self.state_dir / KEY_FILE

    @property
    def jwks_path(self) -> Path:
        """The public JWKS the verifier reads."""
        return self.state_dir / JWKS_FILE

    def mint(
        self,
        tenant: str,
        user: str,
        *,
        ttl: int = DEFAULT_TTL_SECONDS,
        token_use: str = "id",
        client_id: str = DEV_CLIENT_ID,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed token for ``user`` of ``tenant``; ``claims`` adds or overrides claims.

        Raises ``ValueError`` for a tenant id the verifier would refuse (``tenant_ids``'s rule).
        """
        problem = tenant_id_problem(tenant)
        if problem is not None:
            raise ValueError(problem)
        if token_use not in ("id", "access"):
            raise ValueError("token_use must be 'id' or 'access'")
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": user,
            "iss": DEV_ISSUER,
            "iat": now,
            "auth_time": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "token_use": token_use,
        }
        if token_use == "id":
            # Like Cognito: custom attributes are in the id token.
            payload.update({"aud": client_id, "cognito:username": user, "custom:tenantId": tenant})
        else:
            # Like Cognito + a pre-token-generation trigger adding the tenant to access tokens.
            payload.update({"client_id": client_id, "username": user, "tenantId": tenant})
            payload["scope"] = "aws.cognito.signin.user.admin"
        payload.update(claims or {})
        return jwt.encode(payload, self._private_key, algorithm="RS256", headers={"kid": self.kid})

    def verifier(
        self, client_ids: Iterable[str] = (DEV_CLIENT_ID,), **kwargs: Any
    ) -> TokenVerifier:
        """A TokenVerifier that accepts this issuer's tokens (reads the local JWKS file)."""
        return TokenVerifier(DEV_ISSUER, client_ids=client_ids, jwks_file=self.jwks_path, **kwargs)

    def _load_or_create(self) -> tuple[rsa.RSAPrivateKey, str]:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            self._create_key()
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{self.key_path} is not an RSA private key")
        jwk = public_jwk(key.public_key())
        self._write_jwks({"keys": [jwk]})
        return key, jwk["kid"]

    def _create_key(self) -> None:
        """Write a new key complete, then link it into place: another process starting at the
        same time (the app and ``mint``) sees no key or a whole one, and the first link wins."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = self.state_dir / f".{KEY_FILE}.{uuid.uuid4().hex}.tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(pem)
        try:
            os.link(tmp, self.key_path)  # fails if another process linked its key first
            logger.info("dev issuer key created", extra={"state_dir": str(self.state_dir)})
        except FileExistsError:
            pass
        finally:
            tmp.unlink()

    def _write_jwks(self, jwks: dict[str, Any]) -> None:
        text = json.dumps(jwks, indent=2, sort_keys=True) + "\n"
        try:
            if self.jwks_path.read_text(encoding="utf-8") == text:
                return
        except FileNotFoundError:
            pass
        tmp = self.jwks_path.with_suffix(f".{os.getpid()}.tmp")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
            out.write(text)  # 0600 like everything under the state directory
        tmp.replace(self.jwks_path)


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """The JWK of ``public_key`` with ``kid`` = its RFC 7638 thumbprint, ``alg`` RS256, ``use`` sig."""
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    kid = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point (``python -m auth.dev_issuer``)."""
    args = _parser().parse_args(argv)
    try:
        issuer = DevIssuer(args.state_dir)
        if args.command == "mint":
            token = issuer.mint(
                args.tenant,
                args.user,
                ttl=args.ttl,
                token_use=args.token_use,
                client_id=args.client_id,
                claims=_extra_claims(args),
            )
            print(token)
        elif args.command == "jwks-path":
            print(issuer.jwks_path.resolve())
        else:
            print(f"dev issuer ready: {issuer.jwks_path.resolve()} (kid {issuer.kid})")
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _extra_claims(args: argparse.Namespace) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if args.email:
        extra["email"] = args.email
    if args.group:
        extra["cognito:groups"] = list(args.group)
    return extra


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m auth.dev_issuer", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"key/JWKS directory (default: ${STATE_DIR_ENV} or {state_root() / 'dev-issuer'})",
    )
    sub = p.add_subparsers(dest="command", required=True)
    summaries = {
        "init": "create the key and JWKS if missing (idempotent)",
        "jwks-path": "print the JWKS file path",
        "mint": "print a signed token for a tenant and user",
    }  # each one's --help opens with the line the list shows
    commands = {name: sub.add_parser(name, help=text, description=text) for name, text in summaries.items()}
    mint = commands["mint"]
    mint.add_argument("--tenant", required=True)
    mint.add_argument("--user", required=True)
    mint.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds (default 3600)")
    mint.add_argument("--token-use", choices=("id", "access"), default="id")
    mint.add_argument("--client-id", default=DEV_CLIENT_ID)
    mint.add_argument("--email")
    mint.add_argument("--group", action="append", help="cognito:groups entry (repeatable)")
    return p


if __name__ == "__main__":
    sys.exit(main())
