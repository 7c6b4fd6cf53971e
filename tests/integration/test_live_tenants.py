"""Live flow: onboard two tenants, prove ABAC isolation with TVM credentials, forget one user.

Needs real AWS (see tests/integration/conftest.py and docs/operations.md); run with
``pytest -m integration``. Creates two throw-away tenant indexes and offboards them at the end.
"""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from memory.aws import make_client
from memory.errors import AccessDenied
from memory.types import VectorRecord
from memory.index.s3vectors import S3VectorsIndex
from memory.tenants import index_name_for
from memory.stores.tvm import TokenVendingMachine

# Live AWS: the suite-wide loopback-only socket guard is lifted for these tests.
pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]
DIM = 4


def _record(key: str, user: str) -> VectorRecord:
    return VectorRecord(
        key, [0.1, 0.2, 0.3, 0.4], {"user_id": user, "conversation_id": "c1", "content": "it"}
    )


@pytest.fixture
def tenants(live, cli):
    suffix = uuid.uuid4().hex[:8]
    pair = (f"it-a-{suffix}", f"it-b-{suffix}")
    region = ("--region", live.region)
    assert cli("vector-bucket", *region, "--bucket", live.bucket).code == 0
    onboard_argv = ("tenant", "onboard", *region, "--bucket", live.bucket,
                    "--tenant", pair[0], "--tenant", pair[1], "--dimension", str(DIM))
    onboard = cli(*onboard_argv)
    assert onboard.code == 0, onboard.err
    again = cli(*onboard_argv)
    assert again.code == 0 and "Nothing to change" in again.out
    yield pair
    for tenant in pair:
        cli("tenant", "offboard", *region, "--bucket", live.bucket, "--tenant", tenant, "--yes")


def test_tenant_credentials_reach_only_their_own_index(live, tenants) -> None:
    a, b = tenants
    tvm = TokenVendingMachine(live.tvm_role_arn, region_name=live.region)
    own = S3VectorsIndex(lambda: tvm.client_for(a, "s3vectors"), live.bucket, index_name_for(a), DIM)
    own.put([_record("k1", "u1")])
    assert [r.key for r in own.list()] == ["k1"]

    other = S3VectorsIndex(lambda: tvm.client_for(a, "s3vectors"), live.bucket, index_name_for(b), DIM)
    with pytest.raises(AccessDenied):
        other.put([_record("intrusion", "u1")])
    with pytest.raises(AccessDenied):
        list(other.list())
    raw = tvm.client_for(a, "s3vectors")
    with pytest.raises(ClientError) as denied:
        raw.get_vectors(vectorBucketName=live.bucket, indexName=index_name_for(b), keys=["k1"])
    assert denied.value.response["Error"]["Code"] in {"AccessDeniedException", "AccessDenied"}


def test_forget_removes_only_that_users_vectors(live, tenants, cli) -> None:
    a, b = tenants
    admin = make_client("s3vectors", region=live.region)
    index_a = S3VectorsIndex(admin, live.bucket, index_name_for(a), DIM)
    index_b = S3VectorsIndex(admin, live.bucket, index_name_for(b), DIM)
    index_a.put([_record("u1-1", "u1"), _record("u1-2", "u1"), _record("u2-1", "u2")])
    index_b.put([_record("u1-b", "u1")])

    region = ("--region", live.region)
    planned = cli("forget", *region, "--bucket", live.bucket, "--tenant", a, "--user", "u1")
    assert planned.code == 0 and "WOULD DELETE" in planned.out
    assert len(list(index_a.list())) == 3

    done = cli("forget", *region, "--bucket", live.bucket, "--tenant", a, "--user", "u1", "--yes")
    assert done.code == 0 and "2 memories" in done.out
    assert [r.key for r in index_a.list()] == ["u2-1"]
    assert [r.key for r in index_b.list()] == ["u1-b"]  # another tenant's user u1 is untouched
