"""outbox retry and forget on the S3 outbox: what they write is encrypted as the app writes it."""

from __future__ import annotations

import boto3

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
