"""outbox retry and forget on the S3 outbox: what they write is encrypted as the app writes it."""

from __future__ import annotations

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from memory.keys import new_conversation_marker
from memory.pipeline.outbox import OutboxEntry
from memory.pipeline.outbox_s3 import S3Outbox

R = ("--region", "us-east-1")


def test_objects_the_operator_writes_use_the_outbox_kms_key(aws, cli) -> None:
    """With AGENT_OUTBOX_KMS_KEY_ID the app writes every outbox object with that key (a bucket
    policy may even refuse anything else). A revived dead letter is the conversation's transcript
    again, and a forget marker is read by the app: both must be written with the same key,
    not with SSE-S3."""
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", region_name="us-east-1")
    app = S3Outbox(lambda _tenant: s3, "mem-outbox", kms_key_id=key)
    entry = OutboxEntry(
        tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id="c1",
        transcript=[{"role": "user", "text": "secret"}], opened=new_conversation_marker(),
    )  # fmt: skip
    app.put(entry)
    app.dead_letter(entry, "AccessDenied")
    outbox = ("--outbox-bucket", "mem-outbox", "--outbox-kms-key-arn", key)

    assert cli("outbox", "retry", *R, *outbox, "--tenant", "acme").code == 0
    assert cli("forget", *R, "--bucket", "mem-bucket", *outbox, "--tenant", "acme", "--user", "bob",
               "--yes", "--settle-seconds", "0").code == 0  # fmt: skip
    written = [o["Key"] for o in s3.list_objects_v2(Bucket="mem-outbox", Prefix="outbox/acme/")["Contents"]]
    assert any("/pending/" in k for k in written) and any("/erasures/" in k for k in written)
    for name in written:
        head = s3.head_object(Bucket="mem-outbox", Key=name)
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == ("aws:kms", key), name


def test_outbox_list_of_every_tenant_reports_a_refused_tenant_prefix(aws, cli, monkeypatch) -> None:
    """The app's replay skips a tenant whose prefix it cannot read (a warning; the others are
    not held back). ``outbox list`` did the same: an operator lacking s3:GetObject on the
    outbox read 'nothing pending' (exit 0) while a conversation was waiting."""
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    s3 = boto3.client("s3", region_name="us-east-1")
    S3Outbox(lambda _tenant: s3, "mem-outbox").put(OutboxEntry(
        tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id="c1",
        transcript=[{"role": "user", "text": "secret"}], opened=new_conversation_marker(),
    ))  # fmt: skip
    real = BaseClient._make_api_call

    def refuse_pending_reads(self, operation, params):
        if operation == "GetObject" and "/pending/" in params["Key"]:
            error = {"Code": "AccessDenied", "Message": "denied", "Permission": "s3:GetObject"}
            raise ClientError({"Error": error}, operation)
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse_pending_reads)
    result = cli("outbox", "list", *R, "--outbox-bucket", "mem-outbox")
    assert result.code == 4, result.out
    assert "s3:GetObject" in result.err and "EMPTY" not in result.out
