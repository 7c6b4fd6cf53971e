"""vector-bucket and tenant onboard/offboard/list under moto S3 Vectors."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from memory.aws import make_client
from memory.index.s3vectors import create_index_params
from scripts.common import Report
from scripts.vectors import onboard
from tests.support.s3vectors_double import install_s3vectors_double
from tests.support.scripts_cli import lose_first_response

R = ("--region", "us-east-1")
B = ("--bucket", "mem-bucket")


def _s3v():
    return boto3.client("s3vectors", region_name="us-east-1")


def _put(index: str, n: int, dim: int = 4) -> None:
    _s3v().put_vectors(
        vectorBucketName="mem-bucket",
        indexName=index,
        vectors=[
            {"key": f"k{i}", "data": {"float32": [0.1] * dim}, "metadata": {"user_id": "u"}} for i in range(n)
        ],
    )


@pytest.fixture
def bucket(aws, cli) -> None:
    assert cli("vector-bucket", *R, *B).code == 0


def test_bucket_is_created_once(aws, cli) -> None:
    first = cli("vector-bucket", *R, *B)
    assert first.code == 0 and "CREATED" in first.out
    second = cli("vector-bucket", *R, *B)
    assert second.code == 0 and "UNCHANGED" in second.out and "Nothing to change" in second.out
    assert [b["vectorBucketName"] for b in _s3v().list_vector_buckets()["vectorBuckets"]] == ["mem-bucket"]


def test_bucket_dry_run(aws, cli) -> None:
    assert "WOULD CREATE" in cli("vector-bucket", *R, *B, "--dry-run").out
    assert _s3v().list_vector_buckets()["vectorBuckets"] == []


def test_onboard_creates_indexes_with_library_parameters_and_is_idempotent(bucket, cli) -> None:
    first = cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--tenant", "globex")
    assert first.code == 0, first.err
    assert first.out.count("CREATED") == 2
    index = _s3v().get_index(vectorBucketName="mem-bucket", indexName="memory-acme")["index"]
    assert (index["dimension"], index["distanceMetric"], index["dataType"]) == (1024, "cosine", "float32")

    second = cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--tenant", "globex")
    assert second.code == 0 and second.out.count("UNCHANGED") == 2 and "Nothing to change" in second.out


def test_onboard_reports_dimension_drift_without_recreating(bucket, cli) -> None:
    cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--dimension", "4")
    _put("memory-acme", 3)
    result = cli("tenant", "onboard", *R, *B, "--tenant", "acme")
    assert result.code == 3 and "DRIFT" in result.out and "dimension is 4, wanted 1024" in result.out
    assert len(_s3v().list_vectors(vectorBucketName="mem-bucket", indexName="memory-acme")["vectors"]) == 3


def test_onboard_reports_an_index_whose_content_is_filterable(bucket, cli, monkeypatch) -> None:
    """An index created elsewhere with other non-filterable keys (GetIndex reports them; moto keeps
    none, the double does): ``content`` would count against the 2 KB of filterable metadata."""
    install_s3vectors_double(monkeypatch)
    _s3v().create_index(vectorBucketName="mem-bucket", indexName="memory-acme", dataType="float32",
                        dimension=1024, distanceMetric="cosine",
                        metadataConfiguration={"nonFilterableMetadataKeys": ["text"]})
    result = cli("tenant", "onboard", *R, *B, "--tenant", "acme")
    assert result.code == 3 and "DRIFT" in result.out and "content" in result.out


def test_onboard_without_bucket_explains_the_fix(aws, cli) -> None:
    result = cli("tenant", "onboard", *R, *B, "--tenant", "acme")
    assert result.code == 1 and "python -m scripts vector-bucket" in result.err


def test_onboard_rejects_invalid_tenant(bucket, cli) -> None:
    result = cli("tenant", "onboard", *R, *B, "--tenant", "ACME")
    assert result.code == 2
    assert _s3v().list_indexes(vectorBucketName="mem-bucket")["indexes"] == []


def test_offboard_needs_yes_and_reports_counts(bucket, cli) -> None:
    cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--tenant", "globex", "--dimension", "4")
    _put("memory-acme", 3)

    planned = cli("tenant", "offboard", *R, *B, "--tenant", "acme")
    assert planned.code == 0 and "WOULD DELETE" in planned.out and "3 vector(s)" in planned.out
    assert "--yes" in planned.out
    assert len(_s3v().list_indexes(vectorBucketName="mem-bucket")["indexes"]) == 2

    done = cli("tenant", "offboard", *R, *B, "--tenant", "acme", "--yes")
    assert done.code == 0 and "DELETED" in done.out and "3 vector(s)" in done.out
    names = [i["indexName"] for i in _s3v().list_indexes(vectorBucketName="mem-bucket")["indexes"]]
    assert names == ["memory-globex"]

    again = cli("tenant", "offboard", *R, *B, "--tenant", "acme", "--yes")
    assert again.code == 0 and "ABSENT" in again.out


def test_list_shows_tenants_and_counts(bucket, cli) -> None:
    assert "no tenant indexes" in cli("tenant", "list", *R, *B).out
    cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--tenant", "globex", "--dimension", "4")
    _put("memory-globex", 2)
    result = cli("tenant", "list", *R, *B, "--count")
    assert result.code == 0
    lines = {line.split()[1]: line for line in result.out.splitlines() if line.startswith("TENANT")}
    assert set(lines) == {"acme", "globex"}
    assert "0 vector(s)" in lines["acme"] and "2 vector(s)" in lines["globex"]


def test_offboard_and_list_count_ask_for_keys_only(bucket, cli, monkeypatch) -> None:
    """Counting a tenant's vectors fetched every vector's metadata (up to 40 KB each; a page stops
    at 1 MB, so more pages; and listing metadata needs s3vectors:GetVectors too). The requests
    the commands send ask for keys only."""
    import scripts.vectors as vectors_module

    cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--dimension", "4")
    _put("memory-acme", 3)
    sent: list[dict] = []
    real = vectors_module.aws_client

    def recording(service: str, region: str):
        client = real(service, region)
        client.meta.events.register("provide-client-params.s3vectors.ListVectors", lambda params, **_: sent.append(dict(params)))
        return client

    monkeypatch.setattr(vectors_module, "aws_client", recording)
    listed = cli("tenant", "list", *R, *B, "--count")
    assert listed.code == 0 and "3 vector(s)" in listed.out
    planned = cli("tenant", "offboard", *R, *B, "--tenant", "acme")
    assert planned.code == 0 and "3 vector(s)" in planned.out
    done = cli("tenant", "offboard", *R, *B, "--tenant", "acme", "--yes")
    assert done.code == 0 and "3 vector(s)" in done.out
    assert len(sent) == 3
    assert all(not p.get("returnMetadata") and not p.get("returnData") for p in sent), sent


def test_access_denied_on_create_index(bucket, cli, monkeypatch) -> None:
    from botocore.stub import Stubber

    import scripts.vectors as vectors_module

    real = vectors_module.aws_client

    def denied(service: str, region: str):
        client = real(service, region)
        stub = Stubber(client)
        stub.add_response(
            "get_vector_bucket",
            {
                "vectorBucket": {
                    "vectorBucketName": "mem-bucket",
                    "vectorBucketArn": "arn:aws:s3vectors:us-east-1:1:bucket/mem-bucket",
                    "creationTime": "2025-01-01T00:00:00Z",
                }
            },
        )
        for _ in range(2):  # ours, then the library's own check in S3VectorsIndex.ensure
            stub.add_client_error("get_index", service_error_code="NotFoundException", http_status_code=404)
        stub.add_client_error(
            "create_index", service_error_code="AccessDeniedException", http_status_code=403
        )
        stub.activate()
        return client

    monkeypatch.setattr(vectors_module, "aws_client", denied)
    result = cli("tenant", "onboard", *R, *B, "--tenant", "acme")
    assert result.code == 4 and "s3vectors:CreateIndex" in result.err


def test_outbox_bucket_is_created_encrypted_and_private_once(aws, cli) -> None:
    args = ("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox")
    first = cli(*args)
    assert first.code == 0 and any(
        line.startswith("CREATED") and "outbox bucket mem-outbox" in line for line in first.out.splitlines()
    )
    s3 = boto3.client("s3", region_name="us-east-1")
    rules = s3.get_bucket_encryption(Bucket="mem-outbox")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket="mem-outbox")["PublicAccessBlockConfiguration"].values())
    again = cli(*args)
    assert again.code == 0 and "Nothing to change" in again.out
    s3.delete_bucket_encryption(Bucket="mem-outbox")  # drift: brought back
    fixed = cli(*args)
    assert "UPDATED" in fixed.out and "not encrypted" in fixed.out
    assert s3.get_bucket_encryption(Bucket="mem-outbox")["ServerSideEncryptionConfiguration"]["Rules"]


def test_a_versioned_outbox_bucket_is_drift_as_erasure_would_leave_older_versions(aws, cli) -> None:
    """``forget`` and the retention sweep delete an entry's current object; in a bucket with
    versioning enabled S3 keeps every older version (and a delete marker), so an erased
    transcript stayed readable. Such a bucket was accepted as UNCHANGED; it is DRIFT now."""
    args = ("vector-bucket", "--region", "us-east-1", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox")
    assert cli(*args).code == 0
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_bucket_versioning(Bucket="mem-outbox", VersioningConfiguration={"Status": "Enabled"})
    result = cli(*args)
    assert result.code == 3 and "DRIFT" in result.out and "versioning" in result.out
    s3.put_bucket_versioning(Bucket="mem-outbox", VersioningConfiguration={"Status": "Suspended"})
    assert cli(*args).code == 0  # deletes remove what is written from now on


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "created"])
def test_onboard_moves_a_classic_index_to_enhanced(exists) -> None:
    """A CLASSIC index (the default in vector buckets created before 2026-09-30, also for indexes
    created in them later) applies the metadata filter during the vector search; ENHANCED applies it
    before, "ensuring high recall even when filters match a small fraction of vectors" (S3 user
    guide, index mode). Every query filters one user's memories out of the tenant's index: that small
    fraction. moto reports no index mode, so the requests are checked against the service model."""
    client = make_client("s3vectors", region="us-east-1", max_attempts=1)
    target = {"vectorBucketName": "mem-bucket", "indexName": "memory-acme"}
    described = {"index": {**target, "indexArn": "arn:aws:s3vectors:us-east-1:123456789012:bucket/mem-bucket/index/"
                           "memory-acme", "creationTime": 0, "dataType": "float32", "dimension": 1024,
                           "distanceMetric": "cosine", "indexMode": "CLASSIC",
                           "metadataConfiguration": {"nonFilterableMetadataKeys": ["content", "conversation_id"]}}}
    report = Report("tenant onboard")
    with Stubber(client) as stubber:
        if not exists:
            stubber.add_client_error("get_index", "NotFoundException", http_status_code=404)
            stubber.add_client_error("get_index", "NotFoundException", http_status_code=404)
            stubber.add_response("create_index", {"indexArn": described["index"]["indexArn"]},
                                 create_index_params("mem-bucket", "memory-acme", 1024))
        stubber.add_response("get_index", described, target)
        stubber.add_response("update_index_mode", {}, {**target, "indexMode": "ENHANCED"})
        onboard(client, report, "mem-bucket", "acme", 1024)
        stubber.assert_no_pending_responses()
    assert ("UPDATED", "index memory-acme") in [(s, r) for s, r, _ in report.rows]


def test_a_refused_outbox_bucket_names_the_real_iam_action_and_the_taken_name(aws, cli, monkeypatch) -> None:
    """S3 answers HeadBucket with a bare 403 both when the caller lacks s3:ListBucket (there is
    no s3:HeadBucket IAM action) and when the bucket belongs to another account (bucket names
    are global: the README's example name may well be taken). The message must name an action
    that can be granted, and the other cause."""
    from botocore.stub import Stubber

    import scripts.vectors as vectors_module

    real = vectors_module.aws_client

    def refused(service: str, region: str):
        client = real(service, region)
        if service == "s3":
            stub = Stubber(client)
            stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
            stub.activate()
        return client

    monkeypatch.setattr(vectors_module, "aws_client", refused)
    result = cli("vector-bucket", *R, *B, "--outbox-bucket", "agent-memory-outbox")
    assert result.code == 4, result.err
    assert "'s3:ListBucket'" in result.err and "s3:HeadBucket" not in result.err
    assert "another AWS account" in result.err


def test_a_drift_report_does_not_claim_everything_is_as_intended(bucket, cli) -> None:
    """Exit 3 and a DRIFT row: the summary line must not say the opposite."""
    cli("tenant", "onboard", *R, *B, "--tenant", "acme", "--dimension", "4")
    result = cli("tenant", "onboard", *R, *B, "--tenant", "acme")
    assert result.code == 3 and "DRIFT" in result.out
    assert "everything is already as intended" not in result.out


def test_a_bucket_creation_whose_response_was_lost_and_retried_by_botocore_succeeds(aws, cli, monkeypatch) -> None:
    """The service creates the bucket, the response is lost (a read timeout), botocore sends
    CreateVectorBucket again and the retry answers ConflictException: the bucket is ours, the
    command succeeded (on main: 'error: AWS call CreateVectorBucket failed (ConflictException)')."""
    import scripts.vectors as vectors_module

    retried = lose_first_response(monkeypatch, vectors_module, "s3vectors", "CreateVectorBucket")
    result = cli("vector-bucket", *R, *B)
    assert retried, "CreateVectorBucket was not retried"
    assert result.code == 0 and "CREATED" in result.out, result.err
    assert [b["vectorBucketName"] for b in _s3v().list_vector_buckets()["vectorBuckets"]] == ["mem-bucket"]


def test_an_outbox_bucket_creation_whose_response_was_lost_and_retried_succeeds(aws, cli, monkeypatch) -> None:
    """The same for CreateBucket outside us-east-1, whose retry S3 answers BucketAlreadyOwnedByYou."""
    import scripts.vectors as vectors_module

    retried = lose_first_response(monkeypatch, vectors_module, "s3", "CreateBucket")
    result = cli("vector-bucket", "--region", "eu-west-1", *B, "--outbox-bucket", "mem-outbox")
    assert retried, "CreateBucket was not retried"
    assert result.code == 0 and "CREATE" in result.out, result.err
    s3 = boto3.client("s3", region_name="eu-west-1")
    assert s3.get_public_access_block(Bucket="mem-outbox")["PublicAccessBlockConfiguration"]["BlockPublicAcls"]


def test_a_legacy_eu_bucket_is_in_the_apps_region(aws, cli, monkeypatch) -> None:
    """GetBucketLocation answers "EU" for buckets of eu-west-1 made with that legacy constraint
    (S3 API reference: "Buckets with a LocationConstraint of EU reside in eu-west-1"). Such an
    outbox bucket is in an eu-west-1 app's region: not drift (on main: 'in EU, not eu-west-1',
    exit 3). moto no longer makes such buckets: its answer is rewritten as S3's would be."""
    import scripts.vectors as vectors_module

    real = vectors_module.aws_client

    def legacy(service: str, region: str, **kwargs):
        client = real(service, region, **kwargs)
        if service == "s3":
            def eu(parsed, **_):
                if parsed.get("LocationConstraint") == "eu-west-1":
                    parsed["LocationConstraint"] = "EU"
            client.meta.events.register("after-call.s3.GetBucketLocation", eu)
        return client

    eu_west = ("vector-bucket", "--region", "eu-west-1", *B, "--outbox-bucket", "mem-outbox")
    assert cli(*eu_west).code == 0
    monkeypatch.setattr(vectors_module, "aws_client", legacy)
    again = cli(*eu_west)
    assert again.code == 0 and "DRIFT" not in again.out, again.out
