"""Property-based tests of the request edge: payload parsing, the JSON body middleware, identity claims."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from agent.errors import BadRequest
from agent.payload import parse_payload
from auth.dev_issuer import DevIssuer
from memory.plugin.invocation import Invocation
from tests.support.asgi_body import post_chunks
from tests.unit.agent.test_app import SID, _harness, bearer
from tests.support.scripted_model import EchoModel

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None)

FIELDS = ("prompt", "end_session", "stream", "tenant_id", "tenantId", "user_id", "userId")
#: Text that tries to get echoed: markup, quotes, control characters, lone surrogates, long runs.
TEXT = st.one_of(st.text(max_size=20), st.text(alphabet="<>\"'\x00\ud800\udfff\u202e{}$.", max_size=8), st.just("x" * 300))
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT)
JSON = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=8)
#: Objects near the schema: known fields (and their aliases) with any values, plus stray keys.
NEAR = st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), st.one_of(JSON, TEXT, st.booleans()), max_size=4)
#: What a field's error may say after ``<field>: `` -- fixed texts only, never the input.
_FIXED = re.compile(
    r"unknown field|Input should be a valid (string|boolean)(, unable to parse raw data as a unicode string)?|String should have at most 256 characters"
    r"|must be valid Unicode \(no lone surrogates\)|prompt must not be blank"
    r"|prompt is required unless end_session is true|at most 100 characters|the payload must be a JSON object"
)


@PROPERTY
@given(st.one_of(JSON, NEAR))
@example({"prompt": "hi", "<script>": 1})
@example({"prompt": "hi", "": 1})
@example({"prompt": "hi", "a: Input should be a valid string": 1})
@example({"prompt": "\ud800", "tenantId": "\udfff"})
def test_any_json_value_parses_or_is_a_400_naming_only_the_field(raw: Any) -> None:
    """Any decoded JSON value either parses into a payload or raises BadRequest (400) whose
    field is ``$``, a schema field or the offending key, whose message is that field and a fixed
    text (no other input echoed), and whose body the app can send."""
    try:
        payload = parse_payload(raw, max_prompt_chars=100)
    except BadRequest as exc:
        assert exc.status_code == 400
        keys = set(raw) if isinstance(raw, dict) else set()
        assert exc.field == "$" or exc.field in FIELDS or exc.field in keys
        prefix = f"{exc.field}: "
        named = exc.public_message.startswith(prefix)
        assert named or exc.field == "$"
        assert _FIXED.fullmatch(exc.public_message[len(prefix) :] if named else exc.public_message)
        JSONResponse(exc.body())  # encodable (rendering raises on a lone surrogate)
        return
    assert isinstance(raw, dict) and set(raw) <= set(FIELDS)
    assert payload.prompt is None or 0 < len(payload.prompt.strip()) and len(payload.prompt) <= 100


@settings(derandomize=True, max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12), st.sampled_from([b"{", b"}", b'"\\ud800"', b"[" * 50, b"1" * 5000, b"\xff", b"NaN"])), min_size=1, max_size=5))
@example([b"[" * 100_000])
@example([b"1" * 5000])
def test_any_body_reaches_the_app_unchanged_or_is_a_400_for_the_whole_document(chunks: list[bytes]) -> None:
    """Any bytes, in any chunks: a body that is a JSON document reaches the app whole and unchanged;
    any other gets the app's 400 with field ``$`` and a fixed message, and nothing raises."""
    body = b"".join(chunks)
    seen, sent = post_chunks(chunks)
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        assert seen == [] and sent[0]["status"] == 400
        assert json.loads(sent[1]["body"]) == {
            "error": "bad_request", "message": "the request body is not a usable JSON document", "field": "$"
        }
        return
    assert seen == [body] and sent[0]["status"] == 200


IDENTITY_KEYS = ("tenant_id", "tenantId", "user_id", "userId", "tenant", "sub", "custom:tenantId", "identity", "cognito:groups")
SMALL_TEXT = st.one_of(st.text(max_size=8), st.text(alphabet="\ud800\x00<\"", max_size=3))
SMALL_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), SMALL_TEXT),
                          lambda inner: st.one_of(st.lists(inner, max_size=2), st.dictionaries(SMALL_TEXT, inner, max_size=2)),
                          max_leaves=4)
IDENTITY_VALUES = st.one_of(st.sampled_from(["tenant-a", "alice", "tenant-b", "mallory", "Alice", "tenant-a ", ""]), SMALL_JSON)


@pytest.fixture(scope="module")
def app() -> Any:
    """The app in-process with the echo model, shared by the examples (a token for tenant-a/alice)."""
    with tempfile.TemporaryDirectory() as root, pytest.MonkeyPatch.context() as monkeypatch:
        issuer = DevIssuer(Path(root) / "issuer")
        harness = _harness(issuer, Path(root), monkeypatch, EchoModel)
        client, made, _ = next(harness)
        yield client, made, bearer(issuer)
        harness.close()


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(IDENTITY_KEYS), IDENTITY_VALUES, min_size=1, max_size=3))
@example({"tenantId": "tenant-a", "user_id": "alice"})
@example({"tenant_id": "tenant-b"})
def test_identity_fields_in_the_payload_never_change_the_identity(app: Any, claims: dict[str, Any]) -> None:
    """Identity-looking fields in a payload never change who the turn runs as: the request is
    answered as the token's tenant and user, refused as claiming someone else (403), or refused
    as malformed (400); never anything else."""
    client, made, headers = app
    before = len(made[SID].states) if SID in made else 0
    body = json.dumps({"prompt": "hi", **claims})  # ASCII escapes: lone surrogates and NaN reach the app
    response = client.post("/invocations", content=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code in (200, 400, 403), response.text
    states = made[SID].states[before:] if SID in made else []
    if response.status_code != 200:
        assert states == []
        return
    assert states == [Invocation("alice", SID, "tenant-a").to_state()]
    for key, own in (("tenant_id", "tenant-a"), ("tenantId", "tenant-a"), ("user_id", "alice"), ("userId", "alice")):
        assert claims.get(key) in (None, own)  # a claim answered is the token's own (null: no claim)
