"""Cost of verifying a bearer token with a cached key, against jwt.decode and raw RSA verify.

Run: ``python -m bench.bench_auth [--repeat N] [--json]``. Baseline (ratio 1.0) is a bare
``jwt.decode`` with the public key passed in; the floor is the RS256 signature check alone.
"""

from __future__ import annotations

import json
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from auth import AuthError
from auth.dev_issuer import DEV_CLIENT_ID, DEV_ISSUER, DevIssuer
from auth.verifier import TokenVerifier
from bench._common import emit, parser, summary_ms, time_calls


def _serve(body: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


def _rejected(verify: Callable[[str], Any], token: str) -> None:
    try:
        verify(token)
    except AuthError:
        return
    raise AssertionError("token unexpectedly accepted")


def main() -> None:
    p = parser("bench.bench_auth", __doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5000)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as state:
        issuer = DevIssuer(state)
        token = issuer.mint("tenant-001", "alice")
        public_key = jwt.PyJWK(json.loads(issuer.jwks_path.read_text())["keys"][0]).key
        signing_input, _, sig = token.rpartition(".")
        signature = jwt.utils.base64url_decode(sig)
        httpd = _serve(issuer.jwks_path.read_bytes())
        url_verifier = TokenVerifier(
            DEV_ISSUER,
            client_ids=[DEV_CLIENT_ID],
            jwks_url=f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json",
        )
        file_verifier = issuer.verifier()
        # Unknown kid: rejected before any signature check, so the signature may stay as is.
        unknown_header = jwt.utils.base64url_encode(
            json.dumps({"alg": "RS256", "kid": uuid.uuid4().hex}).encode()
        ).decode()
        forged = unknown_header + token[token.index(".") :]

        cases: list[tuple[str, Callable[[], Any]]] = [
            (
                "jwt.decode, key passed in (baseline)",
                lambda: jwt.decode(
                    token,
                    public_key,
                    algorithms=["RS256"],
                    issuer=DEV_ISSUER,
                    audience=DEV_CLIENT_ID,
                ),
            ),
            (
                "RSA PKCS1v15-SHA256 verify only (floor)",
                lambda: public_key.verify(
                    signature, signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
                ),
            ),
            ("TokenVerifier.verify, JWKS URL, cached key", lambda: url_verifier.verify(token)),
            ("TokenVerifier.verify, JWKS file", lambda: file_verifier.verify(f"Bearer {token}")),
            ("reject unknown kid (no refetch)", lambda: _rejected(url_verifier.verify, forged)),
        ]
        rows = []
        baseline = None
        for name, fn in cases:
            stats = summary_ms(time_calls(fn, args.repeat, warmup=20))
            baseline = baseline or stats["p50_ms"]
            rows.append({"case": name, **stats, "ratio_p50": stats["p50_ms"] / baseline})
        httpd.shutdown()
        httpd.server_close()
    emit(f"auth: bearer-token verification ({args.repeat} calls each)", rows, args.json)


if __name__ == "__main__":
    main()
