"""forget: selects one user's (or one conversation's) vectors, deletes only with --yes."""

from __future__ import annotations

import re
from pathlib import Path

import boto3
import pytest
from botocore.client import BaseClient

ARGS = ("forget", "--region", "us-east-1", "--bucket", "mem-bucket", "--tenant", "acme")


def _keys() -> set[str]:
    s3v = boto3.client("s3vectors", region_name="us-east-1")
    return {
        v["key"] for v in s3v.list_vectors(vectorBucketName="mem-bucket", indexName="memory-acme")["vectors"]
    }


@pytest.fixture
def memories(aws, cli) -> None:
    cli("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket")
    cli(
        "tenant",
        "onboard",
        "--region",
        "us-east-1",
        "--bucket",
        "mem-bucket",
        "--tenant",
        "acme",
        "--dimension",
        "3",
    )
    rows = [("ann", "c1"), ("ann", "c1"), ("ann", "c2"), ("bob", "c1"), ("bob", "c3"), ("annie", "c1")]
    boto3.client("s3vectors", region_name="us-east-1").put_vectors(
        vectorBucketName="mem-bucket",
        indexName="memory-acme",
        vectors=[
            {
                "key": f"{u}-{i}",
                "data": {"float32": [0.1, 0.2, 0.3]},
                "metadata": {"user_id": u, "conversation_id": c, "content": "secret text"},
            }
            for i, (u, c) in enumerate(rows)
        ],
    )


def test_without_yes_only_reports(memories, cli) -> None:
    result = cli(*ARGS, "--user", "ann")
    assert result.code == 0 and "WOULD DELETE" in result.out and "3 memories of user ann" in result.out
    assert len(_keys()) == 6
    assert "secret text" not in result.out


def test_yes_deletes_only_that_users_vectors_and_is_idempotent(memories, cli) -> None:
    result = cli(*ARGS, "--user", "ann", "--yes")
    assert result.code == 0 and "DELETED" in result.out and "3 memories" in result.out
    assert _keys() == {"bob-3", "bob-4", "annie-5"}
    again = cli(*ARGS, "--user", "ann", "--yes")
    assert again.code == 0 and "no memories of user ann" in again.out and "Nothing to change" in again.out


def test_one_conversation_only(memories, cli) -> None:
    result = cli(*ARGS, "--user", "ann", "--conversation", "c1", "--yes")
    assert "2 memories" in result.out
    assert _keys() == {"ann-2", "bob-3", "bob-4", "annie-5"}


def test_unknown_tenant_index_is_an_error(memories, cli) -> None:
    result = cli(
        "forget",
        "--region",
        "us-east-1",
        "--bucket",
        "mem-bucket",
        "--tenant",
        "nobody",
        "--user",
        "ann",
        "--yes",
    )
    assert result.code == 1 and "has no index and no outbox" in result.err


def test_access_denied_on_delete_names_the_permission(memories, cli, monkeypatch) -> None:
    import scripts.targets as forget_module

    real = forget_module.aws_client

    def no_delete(service: str, region: str):
        client = real(service, region)

        def deny(**kwargs):
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "403", "Message": "denied", "Permission": "s3vectors:DeleteVectors"}},
                "DeleteVectors",
            )

        client.delete_vectors = deny
        return client

    monkeypatch.setattr(forget_module, "aws_client", no_delete)
    result = cli(*ARGS, "--user", "ann", "--yes")
    assert result.code == 4 and "s3vectors:DeleteVectors" in result.err
    assert len(_keys()) == 6


def _documented_vector_permissions() -> set[str]:
    """The ``s3vectors:`` actions docs/operations.md lists for ``vector-bucket`` / ``tenant`` / ``forget``."""
    text = " ".join((Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text().split())
    listed = re.search(r"`forget`[^:]*: `(s3vectors:[^`]+)`", text)
    assert listed, "docs/operations.md no longer lists the operator's S3 Vectors permissions"
    return {"s3vectors:" + a.strip().removeprefix("s3vectors:") for a in listed.group(1).split(",")}


def test_the_documented_operator_permissions_cover_what_forget_sends(memories, cli, monkeypatch) -> None:
    """An operator granted exactly the documented actions must be able to run ``forget --yes``.
    moto checks no such rule; the s3vectors service model documents it: ListVectors with
    ``returnMetadata`` or ``returnData`` (and QueryVectors with a filter or ``returnMetadata``)
    also needs ``s3vectors:GetVectors``, else the service answers 403."""
    sent: list[tuple[str, dict]] = []
    original = BaseClient._make_api_call

    def record(client: BaseClient, operation: str, params: dict) -> dict:
        if client.meta.service_model.service_name == "s3vectors":
            sent.append((operation, params))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    assert cli(*ARGS, "--user", "ann", "--yes").code == 0
    needed = {f"s3vectors:{operation}" for operation, _ in sent}
    if any(
        (op == "ListVectors" and (p.get("returnMetadata") or p.get("returnData")))
        or (op == "QueryVectors" and ("filter" in p or p.get("returnMetadata")))
        for op, p in sent
    ):
        needed.add("s3vectors:GetVectors")
    assert "s3vectors:ListVectors" in needed and needed <= _documented_vector_permissions()


@pytest.mark.parametrize("extra", [(), ("--yes",)])
def test_a_whole_tenant_is_counted_and_erased_listing_keys_only(memories, cli, monkeypatch, extra) -> None:
    """Erasing (or previewing the erasure of) a whole tenant needs its keys, not their metadata:
    every ListVectors asks for keys only (more vectors a page: a page stops at 1 MB read)."""
    listings: list[dict] = []
    original = BaseClient._make_api_call

    def record(client: BaseClient, operation: str, params: dict) -> dict:
        if operation == "ListVectors":
            listings.append(params)
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    result = cli(*ARGS, "--all-users", *extra)
    assert result.code == 0 and "6 memories" in result.out, result.out
    assert listings and not any(p.get("returnMetadata") or p.get("returnData") for p in listings)
    assert len(_keys()) == (0 if extra else 6)


def test_a_mistyped_tenant_is_an_error_that_writes_nothing(memories, cli) -> None:
    """With an outbox, a tenant id that names nothing (no index, nothing in the outbox) must not
    look like a completed erasure ("no memories of user ann", exit 0) while the real tenant's
    memories stay; nothing is written under the mistyped tenant's prefix either."""
    assert cli("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    outbox = ("--outbox-bucket", "mem-outbox", "--settle-seconds", "0")
    base = [a if a != "acme" else "acmee" for a in ARGS]
    for extra in ((), ("--yes",)):
        result = cli(*base, *outbox, "--user", "ann", *extra)
        assert result.code == 1, result.out
        assert "nothing to erase" in result.err and "tenant list" in result.err
    assert boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="mem-outbox").get("KeyCount") == 0
    assert len(_keys()) == 6
    done = cli(*ARGS, *outbox, "--user", "ann", "--yes")  # the real tenant: erased as before
    assert done.code == 0 and "3 memories" in done.out


def test_a_refused_metadata_listing_names_get_vectors(memories, cli, monkeypatch) -> None:
    """S3 Vectors answers ListVectors with returnMetadata (how forget finds a user's memories)
    with 403 unless the caller also has s3vectors:GetVectors (ListVectors API reference): an
    operator who has ListVectors must be told the permission actually missing."""
    from botocore.stub import Stubber

    import scripts.targets as targets_module

    real = targets_module.aws_client

    def refused(service: str, region: str):
        client = real(service, region)
        index = client.get_index(vectorBucketName="mem-bucket", indexName="memory-acme")
        stub = Stubber(client)
        stub.add_response("get_index", {"index": {"creationTime": "2025-07-15T00:00:00Z", **index["index"]}})
        stub.add_client_error("list_vectors", service_error_code="AccessDeniedException", http_status_code=403)
        stub.activate()
        return client

    monkeypatch.setattr(targets_module, "aws_client", refused)
    result = cli(*ARGS, "--user", "ann")
    assert result.code == 4 and "s3vectors:GetVectors" in result.err, result.err


@pytest.mark.parametrize("command", ["forget", "retention"])
def test_an_index_the_app_refuses_is_still_erased_and_swept(aws, cli, command) -> None:
    """The app refuses an index whose configuration is not the library's (another distance
    metric; memory text filterable, as indexes made before that check were): `tenant onboard`
    calls it drift, to be fixed by offboarding. Until then its memories are still there, and
    erasure and retention must reach them: the operations tools only list and delete (their
    preview already counted them), they never query or store, so the configuration is no reason
    to refuse (on main: 'error: index ... uses the euclidean distance', exit 1, nothing deleted)."""
    s3v = boto3.client("s3vectors", region_name="us-east-1")
    assert cli("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket").code == 0
    s3v.create_index(vectorBucketName="mem-bucket", indexName="memory-acme", dataType="float32",
                     dimension=3, distanceMetric="euclidean")  # fmt: skip
    s3v.put_vectors(vectorBucketName="mem-bucket", indexName="memory-acme", vectors=[
        {"key": f"{u}-{i}", "data": {"float32": [0.1, 0.2, 0.3]},
         "metadata": {"user_id": u, "conversation_id": "c1", "content": "secret text", "stored_at_epoch": 1}}
        for i, u in enumerate(("ann", "ann", "bob"))
    ])  # fmt: skip
    if command == "forget":
        preview, done = (cli(*ARGS, "--user", "ann", *extra) for extra in ((), ("--yes",)))
        assert "2 memories of user ann" in preview.out
        assert done.code == 0 and "2 memories of user ann" in done.out, done.err
        assert _keys() == {"bob-2"}
    else:
        sweep = ("retention", "sweep", "--region", "us-east-1", "--bucket", "mem-bucket", "--tenant", "acme", "--ttl-days", "30")
        preview, done = cli(*sweep), cli(*sweep, "--yes")
        assert "3 memories older than 30 days" in preview.out
        assert done.code == 0 and "3 expired memories" in done.out, done.err
        assert _keys() == set()


def test_a_mistyped_vector_bucket_is_an_error_not_an_erasure_without_memories(memories, cli) -> None:
    """With the tenant's outbox entries found, a mistyped --bucket (no such vector bucket, so no
    index in it) erased the outbox side and reported 'no memories of user ann', exit 0, while
    every memory stayed in the real bucket. A missing bucket is an error, before anything is
    written; so is offboarding from one (on main: 'ABSENT ... nothing to delete', exit 0)."""
    from memory.keys import new_conversation_marker
    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    assert cli("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    s3 = boto3.client("s3", region_name="us-east-1")
    S3Outbox(lambda _tenant: s3, "mem-outbox").put(OutboxEntry(
        tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id="c9",
        transcript=[{"role": "user", "text": "secret"}], opened=new_conversation_marker(),
    ))  # fmt: skip
    typo = [a if a != "mem-bucket" else "mem-bucket-typo" for a in ARGS]
    result = cli(*typo, "--outbox-bucket", "mem-outbox", "--settle-seconds", "0", "--user", "ann", "--yes")
    assert result.code == 1, result.out
    assert "vector bucket 'mem-bucket-typo' not found" in result.err
    assert [o["Key"].split("/")[2] for o in s3.list_objects_v2(Bucket="mem-outbox")["Contents"]] == ["pending"]
    assert len(_keys()) == 6
    offboard = cli("tenant", "offboard", "--region", "us-east-1", "--bucket", "mem-bucket-typo", "--tenant", "acme", "--yes")
    assert offboard.code == 1 and "vector bucket 'mem-bucket-typo' not found" in offboard.err, offboard.out


def test_an_outbox_prefix_other_than_the_apps_is_an_error_not_a_marker_nobody_reads(memories, cli) -> None:
    """An app with AGENT_OUTBOX_PREFIX=ob keeps entries and reads markers under ob/<tenant>/.
    forget without --outbox-prefix wrote its marker under outbox/acme/, which no app reads, found
    no entries and reported a completed erasure (exit 0): the user's pending conversation was
    stored again at the next replay. A bucket whose outbox folders do not include the prefix is
    an error, before anything is written."""
    from memory.keys import new_conversation_marker
    from memory.pipeline.outbox import OutboxEntry
    from memory.pipeline.outbox_s3 import S3Outbox

    assert cli("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    s3 = boto3.client("s3", region_name="us-east-1")
    S3Outbox(lambda _tenant: s3, "mem-outbox", prefix="ob").put(OutboxEntry(
        tenant_id="acme", user_id="ann", agent_name="orchestrator", conversation_id="c9",
        transcript=[{"role": "user", "text": "secret"}], opened=new_conversation_marker(),
    ))  # fmt: skip
    base = (*ARGS, "--outbox-bucket", "mem-outbox", "--settle-seconds", "0", "--user", "ann", "--yes")
    wrong = cli(*base)
    assert wrong.code == 1 and "'outbox/'" in wrong.err and "ob/" in wrong.err, wrong.out
    assert [o["Key"].split("/")[0] for o in s3.list_objects_v2(Bucket="mem-outbox")["Contents"]] == ["ob"]
    assert len(_keys()) == 6
    right = cli(*base, "--outbox-prefix", "ob")
    assert right.code == 0 and "1 outbox entries of user ann" in right.out, right.err
    # another deployment's app (AGENT_OUTBOX_PREFIX=outbox) shares the bucket and has written
    # nothing yet: its operator names the prefix, and its erasure marker lands where it reads
    named = cli(*base, "--outbox-prefix", "outbox")
    assert named.code == 0, named.err
    assert any(o["Key"].startswith("outbox/acme/") for o in s3.list_objects_v2(Bucket="mem-outbox")["Contents"])
