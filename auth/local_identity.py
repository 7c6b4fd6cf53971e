"""A loopback stand-in for the AWS calls ``agentcore invoke --local`` makes before it calls the app.

The starter toolkit (0.3.14), in local mode, exchanges the bearer token for a workload access
token through AgentCore Identity and sends that to ``http://127.0.0.1:8080/invocations`` in the
``WorkloadAccessToken`` header. Offline there is no AWS to answer, so this server answers those
operations on 127.0.0.1, like ``auth.dev_issuer`` stands in for Cognito:

- ``bedrock-agentcore-control``: CreateWorkloadIdentity, GetWorkloadIdentity,
  UpdateWorkloadIdentity (workloads kept in ``<state-dir>/workloads.json``, so the workload name
  the toolkit saves in ``.bedrock_agentcore.yaml`` survives a restart);
- ``bedrock-agentcore``: GetWorkloadAccessTokenForJWT returns the caller's JWT unchanged as the
  workload access token. It never mints or verifies anything: the app verifies the token.
- ``sts``: GetCallerIdentity (a fixed local account), for tools that ask who they are.

Any other operation is refused with a ``ValidationException`` naming it. Request signatures are
not checked (any fake credentials work). CLI::

    python -m auth.local_identity [--port 8090] [--state-dir <state root>/local-identity]

then run the toolkit with ``AWS_ENDPOINT_URL=http://127.0.0.1:8090`` and fake credentials.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from auth.local_state import state_root

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Not 8081: the toolkit's OAuth2 3LO callback server takes that port (``agentcore launch --local``).
DEFAULT_PORT = 8090
STATE_SUBDIR = "local-identity"
STATE_FILE = "workloads.json"
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"
MAX_BODY_BYTES = 256 * 1024
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class ServiceError(Exception):
    """An AWS-style error answer: HTTP status, error code (``x-amzn-ErrorType``) and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _validation(message: str) -> ServiceError:
    return ServiceError(400, "ValidationException", message)


class WorkloadStore:
    """Workload identities by name, persisted as JSON under ``state_dir``; thread-safe."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] = self._load()

    def create(self, name: str, return_urls: list[str]) -> dict[str, Any]:
        """Add a workload; ``ConflictException`` if the name exists."""
        with self._lock:
            if name in self._items:
                raise ServiceError(409, "ConflictException", f"workload identity {name} already exists")
            now = time.time()
            self._items[name] = {
                "name": name,
                "workloadIdentityArn": (
                    f"arn:aws:bedrock-agentcore:{LOCAL_REGION}:{LOCAL_ACCOUNT}:"
                    f"workload-identity-directory/default/workload-identity/{name}"
                ),
                "allowedResourceOauth2ReturnUrls": list(return_urls),
                "createdTime": now,
                "lastUpdatedTime": now,
            }
            self._save()
            return dict(self._items[name])

    def get(self, name: str) -> dict[str, Any]:
        """The workload; ``ResourceNotFoundException`` if unknown."""
        with self._lock:
            return dict(self._require(name))

    def update(self, name: str, return_urls: list[str]) -> dict[str, Any]:
        """Replace the allowed OAuth2 return URLs of an existing workload."""
        with self._lock:
            item = self._require(name)
            item["allowedResourceOauth2ReturnUrls"] = list(return_urls)
            item["lastUpdatedTime"] = time.time()
            self._save()
            return dict(item)

    def _require(self, name: str) -> dict[str, Any]:
        try:
            return self._items[name]
        except KeyError:
            raise ServiceError(404, "ResourceNotFoundException", f"workload identity {name} not found") from None

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict):
            raise ValueError(f"{self.path} is not a JSON object of workloads")
        return data

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._items, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def _name(body: dict[str, Any], field: str = "name") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not 3 <= len(value) <= 255 or not set(value) <= _NAME_CHARS:
        raise _validation(f"{field} must be 3-255 characters of [A-Za-z0-9_.-]")
    return value


def _urls(body: dict[str, Any]) -> list[str]:
    value = body.get("allowedResourceOauth2ReturnUrls", [])
    if not isinstance(value, list) or not all(isinstance(u, str) and u for u in value):
        raise _validation("allowedResourceOauth2ReturnUrls must be a list of URLs")
    return value


class IdentityOperations:
    """The rest-json operations, by request path; each takes the JSON body, returns (status, body)."""

    def __init__(self, store: WorkloadStore) -> None:
        self.store = store
        self.routes: dict[str, Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]] = {
            "/identities/CreateWorkloadIdentity": self.create_workload_identity,
            "/identities/GetWorkloadIdentity": self.get_workload_identity,
            "/identities/UpdateWorkloadIdentity": self.update_workload_identity,
            "/identities/GetWorkloadAccessTokenForJWT": self.get_workload_access_token_for_jwt,
        }

    def create_workload_identity(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = self.store.create(_name(body), _urls(body))
        return 201, {k: item[k] for k in ("name", "workloadIdentityArn", "allowedResourceOauth2ReturnUrls")}

    def get_workload_identity(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, self.store.get(_name(body))

    def update_workload_identity(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, self.store.update(_name(body), _urls(body))

    def get_workload_access_token_for_jwt(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.store.get(_name(body, "workloadName"))
        token = body.get("userToken")
        if not isinstance(token, str) or not token:
            raise _validation("userToken is required")
        # A stand-in only: the caller's JWT goes back unchanged; the app verifies it.
        return 200, {"workloadAccessToken": token}


def _caller_identity_xml() -> bytes:
    return (
        f'<GetCallerIdentityResponse xmlns="{_STS_NS}"><GetCallerIdentityResult>'
        f"<Arn>arn:aws:iam::{LOCAL_ACCOUNT}:user/local-identity</Arn>"
        f"<UserId>AIDALOCALIDENTITY</UserId><Account>{LOCAL_ACCOUNT}</Account>"
        f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
        "</ResponseMetadata></GetCallerIdentityResponse>"
    ).encode()


def _sts_error_xml(code: str, message: str) -> bytes:
    return (
        f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    server: LocalIdentityServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        try:
            raw = self._body()
        except ServiceError as exc:
            self._json(exc.status, {"message": exc.message}, error_code=exc.code)
            return
        if self.path == "/":
            self._sts(raw)
            return
        route = self.server.operations.routes.get(self.path)
        try:
            if route is None:
                raise _validation(
                    f"operation {self.path} is not served by the local identity stand-in "
                    "(it only passes a JWT through: give agentcore invoke --bearer-token, and the agent in "
                    ".bedrock_agentcore.yaml an authorizer_configuration, see the README)"
                )
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise _validation("the request body must be a JSON object")
            status, answer = route(body)
        except json.JSONDecodeError:
            self._json(400, {"message": "the request body is not JSON"}, error_code="ValidationException")
        except ServiceError as exc:
            logger.info("local identity %s -> %s", self.path, exc.code)
            self._json(exc.status, {"message": exc.message}, error_code=exc.code)
        else:
            logger.info("local identity %s -> %d", self.path, status)
            self._json(status, answer)

    def do_GET(self) -> None:  # noqa: N802
        self._json(404, {"message": "not found"}, error_code="ResourceNotFoundException")

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            raise _validation("bad or too large Content-Length")
        return self.rfile.read(length)

    def _sts(self, raw: bytes) -> None:
        action = parse_qs(raw.decode("utf-8", "replace")).get("Action", [""])[0]
        if action == "GetCallerIdentity":
            logger.info("local identity sts %s", action)
            self._send(200, _caller_identity_xml(), "text/xml")
        else:
            message = f"sts {action or '(no action)'} is not served by the local identity stand-in"
            self._send(400, _sts_error_xml("InvalidAction", message), "text/xml")

    def _json(self, status: int, body: dict[str, Any], *, error_code: str | None = None) -> None:
        extra = {"x-amzn-ErrorType": error_code} if error_code else {}
        self._send(status, json.dumps(body).encode(), "application/json", extra)

    def _send(self, status: int, data: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        logger.debug("local identity http: " + format, *args)


class LocalIdentityServer(ThreadingHTTPServer):
    """The stand-in, bound to 127.0.0.1 only (``port=0`` picks a free port)."""

    daemon_threads = True

    def __init__(self, port: int = DEFAULT_PORT, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.operations = IdentityOperations(WorkloadStore(state_dir or state_root() / STATE_SUBDIR))
        super().__init__((HOST, port), _Handler)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the value for ``AWS_ENDPOINT_URL``."""
        return f"http://{HOST}:{self.server_address[1]}"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until interrupted (``python -m auth.local_identity``)."""
    parser = argparse.ArgumentParser(prog="python -m auth.local_identity", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"loopback port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--state-dir", type=Path, default=None, help=f"workload file folder (default {state_root() / STATE_SUBDIR})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = LocalIdentityServer(args.port, args.state_dir)
    except OSError as exc:
        problem = (f"{HOST}:{args.port} is in use (another stand-in still running? stop it, or pass --port)"
                   if exc.errno == errno.EADDRINUSE else f"cannot listen on {HOST}:{args.port}: {exc.strerror or exc}")
        print(f"error: {problem}", file=sys.stderr)  # noqa: T201 - CLI
        return 2
    with server:
        print(f"local identity stand-in on {server.url}; set AWS_ENDPOINT_URL={server.url}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
