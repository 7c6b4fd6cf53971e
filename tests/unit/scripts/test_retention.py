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
