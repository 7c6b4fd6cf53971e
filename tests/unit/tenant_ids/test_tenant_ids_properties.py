"""Property-based tests of the tenant-id rule where ids become index names, STS tags and S3 prefixes."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memory.errors import InvalidTenantId
from memory.index.limits import validate_index_name
from memory.pipeline.outbox_s3 import S3Outbox
from memory.stores.tvm import TENANT_TAG_KEY, TokenVendingMachine, role_session_name
from memory.tenants import index_name_for, validate_tenant_id
from tenant_ids import tenant_id_problem

PROPERTY = settings(derandomize=True, max_examples=300, deadline=None)

#: STS: a session tag value is 0-256 of ``[\p{L}\p{Z}\p{N}_.:/=+\-@]``; a role session name
#: 2-64 of ``[\w+=,.@-]`` (AssumeRole API reference). ASCII-only here, which is stricter.
_TAG_VALUE = re.compile(r"[A-Za-z0-9 _.:/=+\-@]{0,256}")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")

#: Candidates near the rule's edges (hyphens, dots, slashes, case, length, non-ASCII look-alikes)
#: as well as any text at all.
NEAR = st.text(alphabet="ab09-./_A \n\u0131\u212a\uff41", max_size=60)
CANDIDATE = st.one_of(st.text(), NEAR, st.from_regex(r"[a-z0-9][a-z0-9-]{0,58}", fullmatch=True))
_OUTBOX = S3Outbox(lambda _tenant: None, "bucket", prefix="outbox")


def _accepted(candidate: str) -> bool:
    try:
        validate_tenant_id(candidate)
    except InvalidTenantId:
        assert tenant_id_problem(candidate) is not None
        return False
    assert tenant_id_problem(candidate) is None
    return True


@PROPERTY
@given(CANDIDATE)
def test_an_accepted_tenant_id_is_a_valid_index_name_tag_and_contained_prefix(candidate: str) -> None:
    """Anything accepted is a valid S3 Vectors index name once prefixed, a valid STS session tag
    value and role session name, and an S3 prefix segment that cannot escape (no ``/``, no dot,
    so no ``..``); anything refused is refused by every layer that uses tenant ids."""
    if not _accepted(candidate):
        return
    assert validate_index_name(index_name_for(candidate))
    assert _TAG_VALUE.fullmatch(candidate)
    assert _SESSION_NAME.fullmatch(role_session_name("agent-memory", candidate))
    prefix = _OUTBOX.tenant_prefix(candidate)
    assert prefix == f"outbox/{candidate}/" and "." not in candidate and "/" not in candidate


@PROPERTY
@given(st.lists(CANDIDATE, min_size=2, max_size=8, unique=True))
def test_distinct_accepted_tenant_ids_never_share_an_index_prefix_or_session_name(candidates: list[str]) -> None:
    """Two different accepted ids never map to the same index name, S3 prefix or role session
    name, and neither tenant's S3 prefix contains the other's."""
    accepted = [c for c in candidates if _accepted(c)]
    prefixes = [_OUTBOX.tenant_prefix(t) for t in accepted]
    assert len({index_name_for(t) for t in accepted}) == len(accepted)
    assert len({role_session_name("agent-memory", t) for t in accepted}) == len(accepted)
    assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)


class _Sts:
    """An STS client that records AssumeRole requests and grants an hour."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def assume_role(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        expires = datetime.now(timezone.utc) + timedelta(hours=1)
        return {"Credentials": {"AccessKeyId": "AKIA0", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expires}}


@PROPERTY
@given(CANDIDATE)
def test_the_token_vending_machine_tags_only_accepted_tenant_ids(candidate: str) -> None:
    """The TVM asks STS for credentials only for an accepted tenant id, tagged with exactly that
    id (a valid tag value) and a valid session name; anything else is refused before any call."""
    sts = _Sts()
    tvm = TokenVendingMachine("arn:aws:iam::123456789012:role/tvm", "us-east-1", sts_client_factory=lambda: sts)
    if not _accepted(candidate):
        with pytest.raises(InvalidTenantId):
            tvm.credentials_for(candidate)
        assert sts.requests == []
        return
    assert tvm.credentials_for(candidate).tenant_id == candidate
    (request,) = sts.requests
    assert request["Tags"] == [{"Key": TENANT_TAG_KEY, "Value": candidate}] and _TAG_VALUE.fullmatch(candidate)
    assert request["TransitiveTagKeys"] == [TENANT_TAG_KEY] and _SESSION_NAME.fullmatch(request["RoleSessionName"])
