"""TVM telemetry under moto STS: one span per credential request, an AssumeRole child only on a miss."""

from __future__ import annotations

from typing import Iterator

import pytest
from moto import mock_aws

from memory.aws import make_client
from memory.stores.tvm import TokenVendingMachine
from tests.support.otel import Captured, capture_telemetry

ROLE = "arn:aws:iam::123456789012:role/memory-tenant"


@pytest.fixture
def otel() -> Iterator[Captured]:
    with capture_telemetry() as captured:
        yield captured


def test_cache_hits_and_sts_calls_are_told_apart(otel: Captured) -> None:
    with mock_aws():
        sts = make_client("sts", region="us-east-1")
        tvm = TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=lambda: sts)
        vended = tvm.credentials_for("acme")
        tvm.credentials_for("acme")
        tvm.credentials_for("globex")

    requests = otel.named("memory.tvm.credentials")
    assert [(s.attributes["memory.tvm.source"], s.attributes["memory.tenant.id"]) for s in requests] == [
        ("sts", "acme"), ("cache", "acme"), ("sts", "globex")]
    calls = otel.named("memory.tvm.assume_role")
    assert [otel.parent(c) for c in calls] == [requests[0], requests[2]]
    assert {k: calls[0].attributes[k] for k in ("rpc.system", "rpc.service", "rpc.method", "cloud.region")} == {
        "rpc.system": "aws-api", "rpc.service": "STS", "rpc.method": "AssumeRole", "cloud.region": "us-east-1"}
    assert otel.total("memory.tvm.credential_requests", **{"memory.tvm.source": "sts"}) == 2
    assert otel.total("memory.tvm.credential_requests", **{"memory.tvm.source": "cache"}) == 1
    creds = vended.credentials
    secrets = [s for s in (creds.access_key_id, creds.secret_access_key, creds.session_token) if s]
    for span in otel.spans(ours=True):
        assert not any(secret in str(value) for value in span.attributes.values() for secret in secrets)


def test_a_failed_sts_call_marks_both_spans_and_counts_nothing(otel: Captured) -> None:
    class Denied:
        def assume_role(self, **kwargs: object) -> None:
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    tvm = TokenVendingMachine(ROLE, region_name="us-east-1", sts_client_factory=Denied)
    with pytest.raises(Exception):
        tvm.credentials_for("acme")
    assert otel.one("memory.tvm.assume_role").attributes["error.type"] == "AccessDenied"
    assert otel.one("memory.tvm.credentials").attributes["error.type"] == "AccessDenied"
    assert otel.total("memory.tvm.credential_requests") == 0
