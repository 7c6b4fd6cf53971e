"""The invocation payload schema."""

from __future__ import annotations

import pytest

from agent.errors import BadRequest
from agent.payload import parse_payload


def parse(raw, limit: int = 100):
    return parse_payload(raw, max_prompt_chars=limit)


def field_of(raw, limit: int = 100) -> str | None:
    with pytest.raises(BadRequest) as info:
        parse(raw, limit)
    assert info.value.status_code == 400
    return info.value.field


def test_minimal_prompt() -> None:
    p = parse({"prompt": "hi"})
    assert (p.prompt, p.end_session, p.stream) == ("hi", False, False)


def test_end_session_alone_needs_no_prompt() -> None:
    p = parse({"end_session": True})
    assert p.prompt is None and p.end_session


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "hi", "end_session": "yes"}, "end_session"),
        ({"prompt": "hi", "stream": 1}, "stream"),
        ({"prompt": "hi", "tenant": "x"}, "tenant"),
        ({"prompt": "hi", "tenant_id": 7}, "tenant_id"),
        ({"prompt": "x" * 101}, "prompt"),
        ({"prompt": "lone \ud800 surrogate"}, "prompt"),
        ({"prompt": "hi", "user_id": "\udfff"}, "user_id"),
        (["prompt"], "$"),
        ("hello", "$"),
        ({"prompt": "hi", "\ud800": 1}, "$"),  # a key that is not Unicode: the object, not "prompt"
        ({"\udfff": True}, "$"),
    ],
)
def test_malformed_payloads_name_the_field(raw, field: str) -> None:
    assert field_of(raw) == field


def test_identity_claims_are_parsed_for_comparison_only() -> None:
    p = parse({"prompt": "hi", "tenantId": "t1", "user_id": "u1"})
    assert (p.tenant_id, p.user_id) == ("t1", "u1")
