"""The AgentCore Runtime entrypoint: ``POST /invocations`` and ``GET /ping`` on port 8080.

Per request: verify the bearer token (nothing else runs without a valid one), validate the
payload, reject identity claims that contradict the token, take the session (= conversation)
from the registry, run one turn of its orchestrator, and answer JSON
(``{answer, session_id, memories_used, session_ended}``) or a server-sent event stream: a
``{"data": chunk}`` event per text chunk of every model message of the turn (narration before
a tool call too), then ``{"done": true, ...}`` with the JSON answer's fields, whose ``answer``
is the same: the final message's text.
Errors are JSON ``{error, message[, field]}`` with their HTTP status, also Starlette's own 405
for another method on a route (``method_not_allowed``, with its ``Allow`` header).

Run with ``python -m agent`` (or ``python -m agent.app``, as the AgentCore container does).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import uvicorn
from bedrock_agentcore.runtime import BedrockAgentCoreApp, RequestContext
from bedrock_agentcore.runtime.models import SESSION_HEADER
from starlette.middleware import Middleware
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from uvicorn.config import STARTUP_FAILURE

from agent.auth_gate import IDENTITY_SCOPE_KEY, AuthGateMiddleware
from agent.body_limit import BodyLimitMiddleware
from agent.chat_models import MissingDependencyError, model_unavailable
from agent.json_body import JsonBodyMiddleware
from agent.errors import AppError, BadRequest, Forbidden, MethodNotAllowed, Unauthorized, Unavailable
from agent.listening import announce, bind_free_port, http_url
from agent.log_setup import configure_logging
from agent.observability import configure as configure_telemetry
from agent.observability import flush as flush_telemetry
from agent.orchestrator import ORCHESTRATOR_NAME, TOOL_NAMES, Conversation
from agent.payload import InvocationPayload, parse_payload
from agent.services import Services, build_services, check_dependencies, check_state_dir
from agent.sessions import Session
from agent.settings import Settings, SettingsError, load_settings
from agent.shutdown import StoppingServer
from agent.user_hash import UserHasher
from auth import AuthError, Identity, TokenVerifier
from auth.metrics import token_rejected
from memory import telemetry
from memory.errors import IdentityTooLong, MemoryLibraryError, error_reason
from memory.plugin.invocation import Invocation
from memory.stores.scoping import check_storable_identity

logger = logging.getLogger(__name__)

#: Where ``agentcore invoke --local --headers "Authorization:Bearer ..."`` puts the token
#: (the CLI prefixes custom headers). Read only with the local dev issuer.
LOCAL_AUTH_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Authorization"
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,255}")

ServicesFactory = Callable[..., Services]


def create_app(settings: Settings, *, services_factory: ServicesFactory = build_services) -> BedrockAgentCoreApp:
    """The Starlette app; its lifespan builds the services on start and ends sessions on stop."""
    holder: dict[str, Services] = {}
    turns: set[asyncio.Task[None]] = set()
    user_hash = UserHasher(settings.log_hash_key.get_secret_value() if settings.log_hash_key else None)
    telemetry.set_user_hasher(user_hash)  # spans name users by the same pseudonym as the logs

    @asynccontextmanager
    async def lifespan(app: BedrockAgentCoreApp) -> AsyncIterator[None]:
        services = await asyncio.to_thread(
            services_factory,
            settings,
            on_task_start=app.add_async_task,
            on_task_end=app.complete_async_task,
        )
        services.start()
        holder["services"] = services
        logger.info("agent app started (auth=%s, backend=%s)", settings.auth_mode, settings.backend)
        try:
            yield
        finally:
            logger.info("shutting down: ending open conversations")
            await asyncio.to_thread(services.close)
            await asyncio.to_thread(flush_telemetry, int(services.deadline.remaining() * 1000))

    async def authenticate(headers: Headers) -> Identity:
        services = holder.get("services")
        if services is None:
            raise Unavailable("the service is starting; retry shortly")
        return await _authenticate(services.verifier, headers, settings)

    # Outermost first: no valid token -> 401 before the body is read or its size checked.
    app = BedrockAgentCoreApp(
        lifespan=lifespan,
        middleware=[
            Middleware(AuthGateMiddleware, authenticate=authenticate, on_error=_error),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, on_error=_error),
            # The SDK answers unparsable bodies in its own shape (or a 500): refuse them first.
            Middleware(JsonBodyMiddleware, on_error=_error),
        ],
    )

    # Starlette answers a known path with another method in plain text: the app's JSON instead
    app.add_exception_handler(405, _method_not_allowed)
    sized: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    @app.entrypoint
    async def invoke(payload: Any, context: RequestContext) -> Any:
        loop = asyncio.get_running_loop()  # the SDK's worker loop, which runs every session's turns
        if loop not in sized:
            sized.add(loop)
            loop.set_default_executor(ThreadPoolExecutor(_turn_threads(settings), thread_name_prefix="agent-turn"))
        services = holder.get("services")
        if services is None:
            return _error(Unavailable("the service is starting; retry shortly"))
        return await _Invocation(services, settings, turns, user_hash).run(payload, context)

    return app


def _turn_threads(settings: Settings) -> int:
    """Threads of the executor the turns' blocking calls run in (created as needed).

    Strands' ``BedrockModel`` streams each model call in the event loop's default executor, for
    the whole call; with that executor's default size (``min(32, CPUs + 4)``) as many concurrent
    turns held every thread, and other sessions' memory retrieval and ``end_session`` waited.
    One thread per live session, plus the default's for the short calls.
    """
    return settings.max_sessions + min(32, (os.cpu_count() or 1) + 4)


class _Invocation:
    """One ``/invocations`` request, from bearer token to response."""

    def __init__(
        self, services: Services, settings: Settings, turns: set[asyncio.Task[None]], user_hash: UserHasher
    ) -> None:
        self.services = services
        self.settings = settings
        self.turns = turns  # strong references to running streamed turns (the loop keeps weak ones)
        self.started = time.perf_counter()
        self.user_hash = user_hash

    async def run(self, raw: Any, context: RequestContext) -> Any:
        try:
            identity = _verified_identity(context)
            request = parse_payload(raw, max_prompt_chars=self.settings.max_prompt_chars)
            _check_claims(request, identity, self.settings)
            session_id = _session_id(context)
            session = self.services.registry.acquire(session_id, (identity.tenant_id, identity.user_id))
        except Exception as exc:  # noqa: BLE001 - mapped to a status, nothing ran yet
            return _error(exc)
        # end_session left False: the app ends every agent of the session in one place
        # (``registry.end``), so the orchestrator's plugin does not end it a second time.
        # Identity fields were validated by the verifier; Invocation checks them once more.
        try:
            state = Invocation(identity.user_id, session.conversation_id, identity.tenant_id).to_state()
        except Exception as exc:  # noqa: BLE001
            self.services.registry.release(session)
            return _error(exc)
        self._log(identity, session_id, request)
        if request.stream:
            return self._stream(session, request, state)
        try:
            answer = None
            if request.prompt is not None:
                answer = await session.conversation.ask(request.prompt, state)
            return JSONResponse(
                await self._finish(session, request, answer),
                headers={SESSION_HEADER: session.session_id},
            )
        except Exception as exc:  # noqa: BLE001
            return _error(exc)
        finally:
            self.services.registry.release(session)

    def _stream(
        self, session: Session[Conversation], request: InvocationPayload, state: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """Start the turn as a task that owns the session; return a generator relaying its events.

        The task releases the session when the turn ends, whether or not the client ever reads
        the stream (the SDK starts iterating the generator only once the response is sent, and
        never closes one it did not start).
        """
        events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        task = asyncio.get_running_loop().create_task(self._stream_turn(session, request, state, events.put_nowait))
        self.turns.add(task)
        task.add_done_callback(self.turns.discard)
        return _relay(events)

    async def _stream_turn(
        self,
        session: Session[Conversation],
        request: InvocationPayload,
        state: dict[str, Any],
        emit: Callable[[dict[str, Any] | None], None],
    ) -> None:
        try:
            answer = None
            if request.prompt is not None:
                turn = session.conversation.stream(request.prompt, state)
                async for chunk in turn:
                    emit({"data": chunk})
                answer = turn.answer  # the final message's text, as the JSON answer: no narration
            emit({"done": True, **await self._finish(session, request, answer)})
        except Exception as exc:  # noqa: BLE001 - the status is already sent: report in-band
            status, body = _error_body(exc)
            emit({**body, "status": status})
        finally:
            self.services.registry.release(session)
            emit(None)

    async def _finish(
        self, session: Session[Conversation], request: InvocationPayload, answer: str | None
    ) -> dict[str, Any]:
        used = session.conversation.memories_used()
        if request.end_session:
            try:
                await asyncio.to_thread(self.services.registry.end, session)
            except Exception as exc:
                # Not recorded durably (e.g. disk full): say so; the session stays open for a retry.
                logger.error(
                    "ending the session failed",
                    extra={"operation": "end_session", "session_id": session.session_id, "error": type(exc).__name__},
                )
                if isinstance(exc, MemoryLibraryError) and exc.status_code < 500:
                    raise  # refused (e.g. a KMS key policy): no retry helps until the operator acts
                raise Unavailable("the conversation could not be recorded; retry end_session shortly") from exc
        logger.info(
            "invocation done",
            extra={
                "operation": "invoke",
                "session_id": session.session_id,
                "memories_used": len(used),
                "ended": request.end_session,
                "latency_ms": round((time.perf_counter() - self.started) * 1e3, 1),
            },
        )
        return {
            "answer": answer,
            "session_id": session.session_id,
            "memories_used": used,
            "session_ended": request.end_session,
        }

    def _log(self, identity: Identity, session_id: str, request: InvocationPayload) -> None:
        logger.info(
            "invocation",
            extra={
                "operation": "invoke",
                "tenant": identity.tenant_id,
                "user_hash": self.user_hash(identity.user_id),
                "session_id": session_id,
                "stream": request.stream,
                "end_session": request.end_session,
            },
        )


async def _relay(events: asyncio.Queue[dict[str, Any] | None]) -> AsyncIterator[dict[str, Any]]:
    while (event := await events.get()) is not None:
        yield event


async def _authenticate(verifier: TokenVerifier, headers: Headers, settings: Settings) -> Identity:
    """Verify the request's bearer token (run by the auth gate, before the body is read)."""
    header = headers.get("authorization")
    if header is None and settings.auth_mode == "dev":
        # `agentcore invoke --local` sends the token it got from AgentCore Identity (offline:
        # auth.local_identity, which returns the bearer token unchanged) in the SDK's
        # ACCESS_TOKEN_HEADER ("WorkloadAccessToken"); it is verified like any other token.
        header = headers.get(LOCAL_AUTH_HEADER) or headers.get("workloadaccesstoken")
    if not header:  # refused before the verifier, and counted as it counts an empty header
        logger.info("bearer token rejected: %s", "no_token", extra={"auth_reason": "no_token"})
        token_rejected("no_token")
        raise Unauthorized("a bearer token is required")
    identity = await asyncio.to_thread(verifier.verify, header)
    try:  # a user id no memory could be stored under: refused before any turn is accepted
        check_storable_identity(identity.user_id, ORCHESTRATOR_NAME)
    except IdentityTooLong:
        logger.info("bearer token rejected: %s (user id too long to store)", "malformed",
                    extra={"auth_reason": "malformed"})
        token_rejected("malformed")
        raise AuthError("malformed") from None
    return identity


def _verified_identity(context: RequestContext) -> Identity:
    """The Identity the auth gate verified for this request; fails closed without one."""
    identity = context.request.scope.get(IDENTITY_SCOPE_KEY) if context.request is not None else None
    if not isinstance(identity, Identity):
        raise Unauthorized("a bearer token is required")
    return identity


def _check_claims(request: InvocationPayload, identity: Identity, settings: Settings) -> None:
    if request.tenant_id is not None and request.tenant_id != identity.tenant_id:
        raise Forbidden("the payload claims another tenant than the token", field="tenant_id")
    if request.user_id is not None and request.user_id != identity.user_id:
        raise Forbidden("the payload claims another user than the token", field="user_id")
    if settings.tenant_mode == "single" and identity.tenant_id != settings.single_tenant_id:
        raise Forbidden("this deployment serves another tenant")


def _session_id(context: RequestContext) -> str:
    session_id = context.session_id
    if session_id is None:
        return str(uuid.uuid4())
    if not _SESSION_ID.fullmatch(session_id):
        raise BadRequest("invalid session id header", field=SESSION_HEADER)
    return session_id


def _error_body(exc: BaseException) -> tuple[int, dict[str, str]]:
    if isinstance(exc, AppError):
        return exc.status_code, exc.body()
    if isinstance(exc, AuthError):
        code = "unauthorized" if exc.status_code == 401 else "unavailable"
        return exc.status_code, {"error": code, "message": exc.public_message}
    if isinstance(exc, MemoryLibraryError) and exc.status_code < 500:
        logger.warning("memory request refused: %s", type(exc).__name__)
        return exc.status_code, {"error": type(exc).__name__, "message": "the memory service refused the request"}
    if isinstance(exc, MemoryLibraryError):
        logger.warning("memory backend failed: %s", error_reason(exc))
        return 503, {"error": "unavailable", "message": "the memory service is unavailable; retry shortly"}
    if model_unavailable(exc):
        logger.warning("chat model unavailable: %s", type(exc).__name__)
        return 503, {"error": "unavailable", "message": "the model is unavailable; retry shortly"}
    logger.exception("invocation failed")
    return 500, {"error": "internal_error", "message": "the request failed"}


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    """The JSON error for a route's other methods, with Starlette's ``Allow`` header."""
    response = _error(MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
    response.headers.update(getattr(exc, "headers", None) or {})
    return response


def _error(exc: BaseException) -> JSONResponse:
    status, body = _error_body(exc)
    return JSONResponse(body, status_code=status)


def main() -> int:
    """Start the server (``python -m agent``)."""
    try:
        settings = load_settings()
        check_dependencies(settings)
        os.umask(0o077)  # every file this process creates is private to its user (state, logs, keys)
        check_state_dir(settings)
    except SettingsError as exc:
        print(f"agent: {exc}", file=sys.stderr)  # noqa: T201 - CLI
        return 2
    built: dict[str, Services] = {}
    app = create_app(settings, services_factory=lambda _settings, **_hooks: built["services"])
    configure_logging(settings.log_level, unsafe_third_party=settings.unsafe_log_third_party)
    configure_telemetry(
        console=settings.otel_console, capture_content=settings.otel_capture_content, tool_names=TOOL_NAMES
    )
    try:  # before serving, so that a configuration only the services refuse ends like a settings error
        built["services"] = build_services(
            settings, on_task_start=app.add_async_task, on_task_end=app.complete_async_task
        )
    except (ValueError, MemoryLibraryError, MissingDependencyError) as exc:
        print(f"agent: {exc}", file=sys.stderr)  # noqa: T201 - CLI
        return 2
    _serve(app, settings, built["services"])
    return 0


def run() -> NoReturn:
    """``python -m agent``: :func:`main`, then end the process without joining its threads.

    By then the shutdown has recorded what it could (``Services.close``: ended conversations,
    checkpoints of abandoned ones) and flushed telemetry. A turn that never returned still holds
    a thread of the turn executor, which the interpreter would wait for forever at exit (after
    SIGINT, which uvicorn re-raises as ``KeyboardInterrupt``, or its ``sys.exit`` when the server
    cannot start; its re-raised SIGTERM kills the process without that wait, unless another
    handler was installed).
    """
    parse_args(sys.argv[1:])
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130  # 128 + SIGINT, as a shell reports it
    except SystemExit as exc:  # uvicorn's start-up failure (e.g. a port in use), after the lifespan's shutdown
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def parse_args(argv: Sequence[str]) -> None:
    """``python -m agent``'s command line: ``--help`` only (exit 0); any argument is a usage error,
    exit 2. Every setting is an ``AGENT_*`` environment variable: ``--port 9000`` was ignored, and
    ``--help`` started the server (or printed a configuration error)."""
    argparse.ArgumentParser(
        prog="python -m agent",
        description="Start the AgentCore app: POST /invocations and GET /ping on AGENT_HOST:AGENT_PORT "
        "(127.0.0.1:8080 outside a container). It takes no arguments: every setting is an AGENT_* "
        "environment variable (README, Configuration; each one with its default in .env.example). "
        "Offline, for example: AGENT_AUTH_MODE=dev AGENT_MODEL_PROVIDER=local python -m agent",
    ).parse_args(argv)


def _serve(app: BedrockAgentCoreApp, settings: Settings, services: Services) -> None:
    """Run uvicorn as the SDK's ``run`` does (its host choice and log defaults), with the
    server that starts the shutdown's one deadline (``agent.shutdown``) as the signal comes.

    Once it listens, the address is printed on stderr (``agent.listening.announce``). With
    ``AGENT_PORT=0`` the socket is bound here first (the SDK and uvicorn cannot report the port
    the OS chose) and handed to uvicorn as a file descriptor; the printed address is then how
    whoever started the process (tests, several local servers) learns the port.
    """

    def serve(url: str, **where: Any) -> None:
        # bedrock-agentcore 1.25 ``BedrockAgentCoreApp.run``'s uvicorn options
        config = uvicorn.Config(app, access_log=app.debug, log_level="info" if app.debug else "warning", **where)
        server = StoppingServer(
            config, deadline=services.deadline, on_stop=services.begin_close, on_start=lambda: announce(url)
        )
        server.run()
        if not server.started:  # as ``uvicorn.run``: a server that could not start is an error
            sys.exit(STARTUP_FAILURE)

    if settings.port:
        host = settings.host or _sdk_default_host()
        serve(http_url(host, settings.port), host=host, port=settings.port)
        return
    host = settings.host or "127.0.0.1"
    with bind_free_port(host) as (listener, url):
        serve(url, host=host, fd=listener.fileno())


def _sdk_default_host() -> str:
    """The SDK's choice (``BedrockAgentCoreApp.run``): every interface inside a container."""
    in_container = os.path.exists("/.dockerenv") or bool(os.environ.get("DOCKER_CONTAINER"))
    return "0.0.0.0" if in_container else "127.0.0.1"  # noqa: S104 - the container's port must be reachable


if __name__ == "__main__":
    run()
