"""Fixtures for the auth tests: RSA keys, a loopback JWKS server that counts fetches, a token factory."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from auth.dev_issuer import public_jwk
from auth.verifier import TokenVerifier

ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TestPool"
CLIENT_ID = "client-abc"


class JwksServer:
    """Serves ``self.jwks`` at ``/jwks.json`` on loopback and counts the fetches; while ``open``
    is clear, a request is held (up to 4 s, under the key source's 5 s timeout) after
    ``requested`` is set: an endpoint that hangs."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0
        self.fail = False
        self.open, self.requested = threading.Event(), threading.Event()
        self.open.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                server.fetches += 1
                server.requested.set()
                server.open.wait(4)
                if server.fail:
                    self.send_error(503)
                    return
                body = json.dumps(server.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)

    def publish(self, *keys: tuple[str, rsa.RSAPrivateKey]) -> None:
        """Serve the public halves of ``keys`` (kid, private key)."""
        self.jwks = {"keys": [{**public_jwk(k.public_key()), "kid": kid} for kid, k in keys]}

    def __enter__(self) -> "JwksServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture(scope="session")
def key_a() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def key_b() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(key_a: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.publish(("key-a", key_a))
        yield server


@pytest.fixture
def verifier(jwks_server: JwksServer) -> TokenVerifier:
    return TokenVerifier(ISSUER, client_ids=[CLIENT_ID], jwks_url=jwks_server.url)


def base_claims(kind: str = "id", **overrides: Any) -> dict[str, Any]:
    """Claims shaped like a Cognito token of ``kind`` (id/access) for tenant-001 / user-123."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": "user-123", "iss": ISSUER, "iat": now, "exp": now + 600}
    if kind == "id":
        claims.update(token_use="id", aud=CLIENT_ID, **{"custom:tenantId": "tenant-001"})
    else:
        claims.update(token_use="access", client_id=CLIENT_ID, tenantId="tenant-001")
    claims.update(overrides)
    return claims


@pytest.fixture
def make_token(key_a: rsa.RSAPrivateKey) -> Callable[..., str]:
    """``make_token(kind="id", key=key_a, kid="key-a", drop=(), **claim_overrides)``."""

    def make(
        kind: str = "id",
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = "key-a",
        drop: tuple[str, ...] = (),
        **overrides: Any,
    ) -> str:
        claims = base_claims(kind, **overrides)
        for name in drop:
            claims.pop(name, None)
        headers = {"kid": kid} if kid is not None else {}
        return jwt.encode(claims, key or key_a, algorithm="RS256", headers=headers)

    return make


@pytest.fixture
def claims_for() -> Callable[..., dict[str, Any]]:
    """The :func:`base_claims` factory, for tests that sign tokens by hand."""
    return base_claims
