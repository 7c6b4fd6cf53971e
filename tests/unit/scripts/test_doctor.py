"""doctor: OK after a full setup, MISSING with fix commands on an empty account, DENIED on refusals."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

import scripts.doctor as doctor_module

R = ("--region", "us-east-1")
EXEC = "arn:aws:iam::123456789012:role/agentcore-runtime"
MODEL = "amazon.nova-2-multimodal-embeddings-v1:0"
DOCTOR = ("doctor", *R, "--bucket", "mem-bucket", "--tenant", "acme", "--model-id", MODEL)


@pytest.fixture
def bedrock(monkeypatch):
    """moto has no Bedrock control plane: stub get_foundation_model (``responses`` set per test)."""
    responses: list[tuple[str, object]] = []
    real = doctor_module.aws_client

    def client(service: str, region: str):
        c = real(service, region)
        if service == "bedrock":
            stub = Stubber(c)
            for kind, value in responses:
                if kind == "ok":
                    stub.add_response(
                        "get_foundation_model",
                        {
                            "modelDetails": {
                                "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{value}",
                                "modelId": value,
                            }
                        },
                        {"modelIdentifier": value},
                    )
                else:
                    stub.add_client_error(
                        "get_foundation_model", service_error_code=str(value), http_status_code=403
                    )
            stub.activate()
        return c

    monkeypatch.setattr(doctor_module, "aws_client", client)
    return responses


def _full_setup(cli) -> None:
    for argv in (
        ("cognito", "setup", *R),
        ("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC),
        ("vector-bucket", *R, "--bucket", "mem-bucket"),
        ("tenant", "onboard", *R, "--bucket", "mem-bucket", "--tenant", "acme"),
    ):
        assert cli(*argv).code == 0


def test_all_ok_after_full_setup(aws, cli, bedrock) -> None:
    _full_setup(cli)
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    assert result.code == 0, result.out + result.err
    statuses = [line.split()[0] for line in result.out.splitlines()[1:]]
    assert statuses == ["OK"] * 6


def test_empty_account_lists_what_is_missing_with_fixes(aws, cli, bedrock) -> None:
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    assert result.code == 1
    assert result.out.count("MISSING") == 5
    assert "fix: python -m scripts cognito setup" in result.out
    assert "fix: python -m scripts vector-bucket --bucket mem-bucket" in result.out
    assert (
        "fix: python -m scripts tenant onboard --bucket mem-bucket --tenant acme --dimension 1024"
        in result.out
    )


def test_loosened_trust_policy_is_drift(aws, cli, bedrock) -> None:
    _full_setup(cli)
    loose = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": EXEC}, "Action": "sts:AssumeRole"}],
    }
    boto3.client("iam", region_name="us-east-1").update_assume_role_policy(
        RoleName="agent-memory-tvm", PolicyDocument=json.dumps(loose)
    )
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    assert result.code == 3 and "does not require the TenantID session tag" in result.out


def test_denied_check_names_the_permission(aws, cli, bedrock) -> None:
    _full_setup(cli)
    bedrock.append(("error", "AccessDeniedException"))
    result = cli(*DOCTOR)
    assert result.code == 4
    assert "DENIED" in result.out and "bedrock:GetFoundationModel" in result.out


def test_outbox_bucket_is_checked(aws, cli, bedrock) -> None:
    _full_setup(cli)
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    missing = cli(*DOCTOR, "--outbox-bucket", "mem-outbox")
    assert "MISSING" in missing.out and "--outbox-bucket mem-outbox" in missing.out
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    assert cli("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--outbox-bucket", "mem-outbox").code == 0
    ok = cli(*DOCTOR, "--outbox-bucket", "mem-outbox")
    assert ok.code == 0, ok.out
    assert "outbox bucket mem-outbox" in ok.out and "encrypted, private" in ok.out


def test_a_tvm_role_without_the_outbox_kms_key_is_drift(aws, cli, bedrock) -> None:
    """An outbox encrypted with a customer-managed key needs the key in the TVM role: doctor told
    about the key finds a role created without it, and is satisfied once tvm-role adds it."""
    _full_setup(cli)
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    tvm = ("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--outbox-bucket", "mem-outbox")
    assert cli(*tvm).code == 0
    key = ("--outbox-kms-key-arn", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab")
    drift = cli(*DOCTOR, "--outbox-bucket", "mem-outbox", *key)
    assert drift.code != 0 and "DRIFT" in drift.out and "differs from the ABAC policy" in drift.out
    assert cli(*tvm, *key).code == 0
    ok = cli(*DOCTOR, "--outbox-bucket", "mem-outbox", *key)
    assert ok.code == 0, ok.out


def test_an_index_with_another_distance_metric_is_drift(aws, cli, bedrock) -> None:
    """A euclidean index of the right dimension accepts every call the app makes, but its
    distances are not the cosine distances retrieval thresholds are calibrated on: `tenant
    onboard` reports it as drift, and doctor must not call it OK."""
    _full_setup(cli)
    boto3.client("s3vectors", region_name="us-east-1").create_index(
        vectorBucketName="mem-bucket", indexName="memory-globex", dataType="float32",
        dimension=1024, distanceMetric="euclidean",
    )  # fmt: skip
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR, "--tenant", "globex")
    assert result.code == 3, result.out
    row = next(line for line in result.out.splitlines() if "memory-globex" in line)
    assert row.startswith("DRIFT") and "distanceMetric is euclidean, wanted cosine" in row


def test_a_trust_policy_without_tag_session_is_drift(aws, cli, bedrock) -> None:
    """STS authorises AssumeRole with session tags only if the trust policy also allows
    sts:TagSession (the IAM simulator agrees: see test_abac_simulation); the TVM always passes
    the TenantID tag, so such a role refuses every tenant although the tag condition is there."""
    _full_setup(cli)
    iam = boto3.client("iam", region_name="us-east-1")
    trust = iam.get_role(RoleName="agent-memory-tvm")["Role"]["AssumeRolePolicyDocument"]
    for statement in trust["Statement"]:
        statement["Action"] = "sts:AssumeRole"
    iam.update_assume_role_policy(RoleName="agent-memory-tvm", PolicyDocument=json.dumps(trust))
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    assert result.code == 3, result.out
    assert "DRIFT" in result.out and "sts:TagSession" in result.out


def test_the_tvm_role_fix_keeps_the_outbox_statements(aws, cli, bedrock) -> None:
    """Running the fix doctor prints for a drifted TVM role must give back the role doctor
    expects: with the outbox and its key, not a role that loses them (every tenant's outbox
    write would then be refused)."""
    _full_setup(cli)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    outbox = ("--outbox-bucket", "mem-outbox", "--outbox-prefix", "ob", "--outbox-kms-key-arn", key)
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    drift = cli(*DOCTOR, *outbox)
    row = next(line for line in drift.out.splitlines() if "TVM role" in line)
    assert row.startswith("DRIFT"), drift.out
    fix = row.split("fix: ", 1)[1].replace("<runtime role ARN>", EXEC).split()
    assert fix[:3] == ["python", "-m", "scripts"]
    assert cli(*fix[3:], *R).code == 0
    ok = cli(*DOCTOR, *outbox)
    assert ok.code == 0, ok.out


@pytest.mark.parametrize("kind", ["attached", "inline"])
def test_a_tvm_role_with_another_policy_is_drift(aws, cli, bedrock, kind) -> None:
    """Any other policy on the TVM role applies to every tenant session: one granting
    s3vectors:* on the bucket lets a tenant reach every other tenant's index. `tvm-role`
    reports it as drift; doctor must not call that role OK."""
    _full_setup(cli)
    iam = boto3.client("iam", region_name="us-east-1")
    wide = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3vectors:*", "Resource": "arn:aws:s3vectors:*:*:bucket/mem-bucket/*"}]})  # fmt: skip
    if kind == "attached":
        arn = iam.create_policy(PolicyName="vectors-wide", PolicyDocument=wide)["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="agent-memory-tvm", PolicyArn=arn)
    else:
        iam.put_role_policy(RoleName="agent-memory-tvm", PolicyName="vectors-wide", PolicyDocument=wide)
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    row = next(line for line in result.out.splitlines() if "TVM role" in line)
    assert result.code == 3 and row.startswith("DRIFT") and "vectors-wide" in row, result.out


def test_a_single_tenant_setup_has_no_tvm_role_to_miss(aws, cli, bedrock) -> None:
    """A single-tenant deployment (`agentcore --tenant-mode single`) never assumes the TVM role,
    so none is created; doctor must be able to call that setup OK."""
    for argv in (
        ("cognito", "setup", *R),
        ("vector-bucket", *R, "--bucket", "mem-bucket"),
        ("tenant", "onboard", *R, "--bucket", "mem-bucket", "--tenant", "acme"),
    ):
        assert cli(*argv).code == 0
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR, "--tenant-mode", "single")
    assert result.code == 0, result.out
    assert "TVM role" not in result.out


def test_an_outbox_bucket_in_another_region_is_drift(aws, cli, bedrock) -> None:
    """The app's S3 client is made for its region (AGENT_REGION): a bucket elsewhere answers
    only through redirects, and with the outbox's KMS key S3 calls KMS from the bucket's
    region, which the tenant role's kms:ViaService (s3.<app region>) refuses. doctor must not
    call such a bucket OK, and vector-bucket must say so rather than 'UNCHANGED'."""
    _full_setup(cli)
    s3 = boto3.client("s3", region_name="us-west-2")
    s3.create_bucket(Bucket="mem-outbox", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    assert cli("vector-bucket", "--region", "us-west-2", "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR, "--outbox-bucket", "mem-outbox")
    row = next(line for line in result.out.splitlines() if "outbox bucket" in line)
    assert result.code == 3 and row.startswith("DRIFT") and "us-west-2" in row, result.out
    again = cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox")
    assert again.code == 3 and "us-west-2" in again.out, again.out


def test_without_outbox_arguments_a_tvm_role_granting_the_outbox_is_ok(aws, cli, bedrock) -> None:
    """The README's setup always grants the outbox; doctor run without --outbox-bucket (it is
    optional) must check that role as it is, not call it drift and print a `tvm-role` command
    that would take every tenant's outbox access away. A widened outbox grant is still drift."""
    _full_setup(cli)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    tvm = ("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC)
    assert cli(*tvm, "--outbox-bucket", "mem-outbox", "--outbox-prefix", "ob", "--outbox-kms-key-arn", key).code == 0
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    ok = cli(*DOCTOR)
    assert ok.code == 0, ok.out

    iam = boto3.client("iam", region_name="us-east-1")
    policy = iam.get_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access")["PolicyDocument"]
    for statement in policy["Statement"]:
        if statement["Sid"] == "OwnTenantOutboxObjectsOnly":
            statement["Resource"] = "arn:aws:s3:::mem-outbox/ob/*"  # every tenant's prefix
    iam.put_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access", PolicyDocument=json.dumps(policy))
    wide = cli(*DOCTOR)
    assert wide.code == 3 and "differs from the ABAC policy" in wide.out, wide.out


def test_a_tvm_role_letting_tenants_write_their_erasure_markers_is_drift(aws, cli, bedrock) -> None:
    """Roles written before erasure markers became read-only for tenant sessions granted the
    object actions on the whole tenant prefix (``<prefix>/${TenantID}/*``), markers included: doctor
    reports that as drift and its fix keeps the outbox the role grants."""
    _full_setup(cli)
    tvm = ("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC)
    assert cli(*tvm, "--outbox-bucket", "mem-outbox", "--outbox-prefix", "ob").code == 0
    iam = boto3.client("iam", region_name="us-east-1")
    policy = iam.get_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access")["PolicyDocument"]
    policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != "ReadOwnTenantErasureMarkersOnly"]
    for statement in policy["Statement"]:
        if statement["Sid"] == "OwnTenantOutboxObjectsOnly":
            statement["Resource"] = "arn:aws:s3:::mem-outbox/ob/${aws:PrincipalTag/TenantID}/*"  # the earlier grant
    iam.put_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access", PolicyDocument=json.dumps(policy))
    bedrock.append(("ok", MODEL))
    old = cli(*DOCTOR)
    row = next(line for line in old.out.splitlines() if "differs from the ABAC policy" in line)
    assert old.code == 3 and row.startswith("DRIFT"), old.out
    assert "--outbox-bucket mem-outbox --outbox-prefix ob" in old.out, old.out


def test_a_classic_index_is_drift_fixed_by_onboard(aws, cli, bedrock) -> None:
    """A CLASSIC index (the default in vector buckets created before 2026-09-30, so every tenant
    onboarded before `tenant onboard` moved them) applies the per-user filter during the vector
    search: a user whose memories are a small part of the tenant's index gets fewer than topK of
    them. `tenant onboard` moves it to ENHANCED; doctor must not call it OK but name that fix.
    moto reports no index mode: the index is given the mode GetIndex would describe."""
    from moto.s3vectors.models import s3vectors_backends

    _full_setup(cli)
    backend = s3vectors_backends["123456789012"]["aws"]
    backend.get_index(vector_bucket_name="mem-bucket", index_name="memory-acme", index_arn=None).index_mode = "CLASSIC"
    assert boto3.client("s3vectors", region_name="us-east-1").get_index(
        vectorBucketName="mem-bucket", indexName="memory-acme")["index"]["indexMode"] == "CLASSIC"
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    assert result.code == 3, result.out
    row = next(line for line in result.out.splitlines() if "memory-acme" in line)
    assert row.startswith("DRIFT") and "CLASSIC" in row, row
    assert "fix: python -m scripts tenant onboard --bucket mem-bucket --tenant acme" in result.out
