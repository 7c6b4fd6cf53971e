"""retention sweep on S3 Vectors and the S3 outbox (the local backend: test_local_operations)."""

from __future__ import annotations

import boto3

R = ("--region", "us-east-1")
SWEEP = ("retention", "sweep", *R, "--bucket", "mem-bucket", "--ttl-days", "30")


def _vectors() -> set[str]:
    s3v = boto3.client("s3vectors", region_name="us-east-1")
    return {v["key"] for v in s3v.list_vectors(vectorBucketName="mem-bucket", indexName="memory-acme")["vectors"]}


def _setup(cli) -> None:
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    assert cli("tenant", "onboard", *R, "--bucket", "mem-bucket", "--tenant", "acme", "--dimension", "3").code == 0
    boto3.client("s3vectors", region_name="us-east-1").put_vectors(
        vectorBucketName="mem-bucket", indexName="memory-acme",
        vectors=[{"key": "old", "data": {"float32": [0.1, 0.2, 0.3]},
                  "metadata": {"user_id": "ann", "content": "secret", "stored_at_epoch": 1}}],
    )  # fmt: skip


def test_a_mistyped_tenant_is_an_error_not_a_clean_sweep(aws, cli) -> None:
    """The docs ask for a scheduled sweep of every tenant: a mistyped tenant id in it must fail
    the job, not report 'Nothing to change: everything is already as intended' (exit 0) while
    the real tenant's expired memories stay forever. It is refused before any tenant is swept."""
    _setup(cli)
    for extra in ((), ("--yes",)):
        result = cli(*SWEEP, "--outbox-bucket", "mem-outbox", "--tenant", "acme", "--tenant", "acmee", *extra)
        assert result.code == 1, result.out
        assert "'acmee' has no index" in result.err and "tenant list" in result.err
    assert _vectors() == {"old"}
    done = cli(*SWEEP, "--outbox-bucket", "mem-outbox", "--tenant", "acme", "--yes")
    assert done.code == 0 and "1 expired memories" in done.out and _vectors() == set()


def test_a_sweep_without_the_outbox_says_that_dead_letters_were_not_swept(aws, cli) -> None:
    """A dead letter holds the whole transcript and expires with the memories; on S3 the sweep
    reaches it only through --outbox-bucket. Without it the sweep must say so (as forget warns
    that it wrote no marker), not report a complete sweep while the transcripts stay."""
    _setup(cli)
    done = cli(*SWEEP, "--tenant", "acme", "--yes")
    assert done.code == 0 and "1 expired memories" in done.out
    warning = next((line for line in done.out.splitlines() if line.startswith("WARNING")), "")
    assert "dead letters" in warning and "--outbox-bucket" in warning, done.out
    with_outbox = cli(*SWEEP, "--tenant", "acme", "--outbox-bucket", "mem-outbox", "--yes")
    assert "WARNING" not in with_outbox.out and "0 expired dead letters" in with_outbox.out


def test_the_documented_operator_permissions_cover_what_the_sweep_sends_to_the_outbox(aws, cli, monkeypatch) -> None:
    """The sweep reads and deletes expired dead letters: an operator granted the object actions
    docs/operations.md lists for it must be able to run it (on main they were listed only for
    forget and outbox, and such an operator's sweep stopped at the first dead letter with 403)."""
    import dataclasses
    import re
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    from botocore.client import BaseClient

    from memory.keys import new_conversation_marker
    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox
    from scripts.common import IAM_ACTIONS

    _setup(cli)
    s3 = boto3.client("s3", region_name="us-east-1")
    old = OutboxEntry(
        tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id="c1",
        transcript=[{"role": "user", "text": "secret"}], opened=new_conversation_marker(),
        created_at=(datetime.now(timezone.utc) - timedelta(days=40)).isoformat(),
    )  # fmt: skip
    app = S3Outbox(lambda _tenant: s3, "mem-outbox")
    app.put(old)
    app.dead_letter(dataclasses.replace(old), "AccessDenied")
    sent: set[str] = set()
    original = BaseClient._make_api_call

    def record(client: BaseClient, operation: str, params: dict) -> dict:
        if client.meta.service_model.service_name == "s3":
            sent.add("s3:" + IAM_ACTIONS["s3"].get(operation, operation))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    done = cli(*SWEEP, "--tenant", "acme", "--outbox-bucket", "mem-outbox", "--yes")
    assert done.code == 0 and "1 expired dead letters" in done.out, done.out
    text = " ".join((Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text().split())
    commands, objects = re.search(r"and, for (.+?), `(s3:GetObject[^`]*)` on the outbox prefix", text).groups()
    assert "`retention sweep`" in commands, commands
    documented = {"s3:ListBucket"} | {"s3:" + a.strip().removeprefix("s3:") for a in objects.split(",")}
    assert sent <= documented, sent - documented


def test_a_sweep_of_several_tenants_lists_the_outbox_root_once(aws, cli, monkeypatch) -> None:
    """Without --outbox-prefix the outbox is checked for the default prefix's folder by listing
    the bucket's root; a scheduled sweep of every tenant listed it once per tenant. It is
    opened (and checked) once per sweep; the tenants' own listings are under their prefixes."""
    _setup(cli)
    assert cli("tenant", "onboard", *R, "--bucket", "mem-bucket", "--tenant", "globex", "--tenant", "initech",
               "--dimension", "3").code == 0  # fmt: skip
    boto3.client("s3", region_name="us-east-1").put_object(Bucket="mem-outbox", Key="outbox/acme/pending/x", Body=b"{}")
    listed: list[dict] = []
    import scripts.targets as targets_module

    def hook(params: dict, **_: object) -> None:
        listed.append(dict(params))

    real = targets_module.aws_client

    def recording(service: str, region: str):
        client = real(service, region)
        if service == "s3":
            client.meta.events.register("provide-client-params.s3.ListObjectsV2", hook)
        return client

    monkeypatch.setattr(targets_module, "aws_client", recording)
    tenants = ("--tenant", "acme", "--tenant", "globex", "--tenant", "initech")
    for extra in ((), ("--yes",)):
        listed.clear()
        done = cli(*SWEEP, "--outbox-bucket", "mem-outbox", *tenants, *extra)
        assert done.code == 0, done.out + done.err
        root = [p for p in listed if not p.get("Prefix")]
        assert len(root) == 1 and root[0]["Delimiter"] == "/", listed
        assert {p["Prefix"].split("/")[1] for p in listed if p.get("Prefix")} >= {"acme", "globex", "initech"}
