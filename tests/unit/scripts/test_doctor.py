"""doctor: OK after a full setup, MISSING with fix commands on an empty account, DENIED on refusals."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from scripts.agentcore_cmd import DEFAULT_CHAT_MODEL
from tests.support.scripts_cli import outputs

import scripts.doctor as doctor_module

R = ("--region", "us-east-1")
EXEC = "arn:aws:iam::123456789012:role/agentcore-runtime"
MODEL = "amazon.nova-2-multimodal-embeddings-v1:0"
DOCTOR = ("doctor", *R, "--bucket", "mem-bucket", "--tenant", "acme", "--model-id", MODEL)


@pytest.fixture(autouse=True)
def _no_settings_file_here(tmp_path, monkeypatch) -> None:
    """doctor reads ./agentcore.env (or $AGENT_SETTINGS_FILE) when there is one: run each test
    in an empty folder, whatever the developer's checkout holds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENT_SETTINGS_FILE", raising=False)


@pytest.fixture
def bedrock(monkeypatch):
    """moto has no Bedrock control plane: stub get_foundation_model, or get_inference_profile
    for a ``profile`` response (``responses`` set per test)."""
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
                elif kind == "profile":
                    stub.add_response(
                        "get_inference_profile",
                        {
                            "inferenceProfileName": value,
                            "inferenceProfileArn": f"arn:aws:bedrock:us-east-1:123456789012:inference-profile/{value}",
                            "models": [{"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/m"}],
                            "inferenceProfileId": value,
                            "status": "ACTIVE",
                            "type": "SYSTEM_DEFINED",
                        },
                        {"inferenceProfileIdentifier": value},
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
    # forget would leave erased transcripts in older versions
    bedrock.append(("ok", MODEL))
    boto3.client("s3", region_name="us-east-1").put_bucket_versioning(
        Bucket="mem-outbox", VersioningConfiguration={"Status": "Enabled"}
    )
    versioned = cli(*DOCTOR, "--outbox-bucket", "mem-outbox")
    assert versioned.code == 3 and "DRIFT" in versioned.out and "versioning is enabled" in versioned.out
    # vector-bucket only reports it: the fix printed is the S3 call, and run as written it clears it
    row = next(line for line in versioned.out.splitlines() if "outbox bucket" in line)
    fix = shlex.split(row.split("-> fix: ", 1)[1].split(";")[0])
    assert fix[:3] == ["aws", "s3api", "put-bucket-versioning"], row
    options = dict(zip(fix[3::2], fix[4::2]))
    status = options["--versioning-configuration"].removeprefix("Status=")
    boto3.client("s3", region_name="us-east-1").put_bucket_versioning(
        Bucket=options["--bucket"], VersioningConfiguration={"Status": status}
    )
    bedrock.append(("ok", MODEL))
    assert cli(*DOCTOR, "--outbox-bucket", "mem-outbox").code == 0


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


def test_the_fix_printed_for_an_index_tenant_onboard_cannot_change_run_as_written_clears_it(aws, cli, bedrock) -> None:
    """`tenant onboard` only reports another metric, dimension or type (it never recreates an
    index), so it is no fix for that drift (doctor printed it): doctor prints the offboard and
    onboard that make the index again, saying that it deletes the memories."""
    _full_setup(cli)
    s3v = boto3.client("s3vectors", region_name="us-east-1")
    s3v.delete_index(vectorBucketName="mem-bucket", indexName="memory-acme")
    s3v.create_index(vectorBucketName="mem-bucket", indexName="memory-acme", dataType="float32", dimension=1024,
                     distanceMetric="euclidean")  # fmt: skip
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    row = next(line for line in cli(*DOCTOR).out.splitlines() if "memory-acme" in line)
    assert row.startswith("DRIFT") and "deletes the tenant's memories" in row, row
    commands = re.findall(r"`(python -m scripts [^`]+)`", row.split("-> fix: ", 1)[1])
    assert [c.split()[3:5] for c in commands] == [["tenant", "offboard"], ["tenant", "onboard"]], row
    for command in commands:
        assert cli(*shlex.split(command)[3:], *R).code == 0, command
    row = next(line for line in cli(*DOCTOR).out.splitlines() if "memory-acme" in line)
    assert row.startswith("OK"), row


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


@pytest.mark.parametrize("kind", ["attached", "inline"])
def test_the_fix_printed_for_another_policy_on_the_tvm_role_removes_it(aws, cli, bedrock, kind) -> None:
    """`tvm-role` leaves another policy in place (it reports it as drift), so re-running it is no
    fix for that drift: doctor prints the IAM call that removes it, and once run, the role is OK."""
    _full_setup(cli)
    iam = boto3.client("iam", region_name="us-east-1")
    wide = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
    if kind == "attached":
        arn = iam.create_policy(PolicyName="wide", PolicyDocument=wide)["Policy"]["Arn"]
        iam.attach_role_policy(RoleName="agent-memory-tvm", PolicyArn=arn)
    else:
        iam.put_role_policy(RoleName="agent-memory-tvm", PolicyName="wide", PolicyDocument=wide)
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    row = next(line for line in cli(*DOCTOR).out.splitlines() if "TVM role" in line)
    fix = shlex.split(row.split("-> fix: ", 1)[1])
    assert fix[:2] == ["aws", "iam"], row
    options = dict(zip(fix[3::2], fix[4::2]))
    assert options["--role-name"] == "agent-memory-tvm"
    if fix[2] == "detach-role-policy":
        iam.detach_role_policy(RoleName=options["--role-name"], PolicyArn=options["--policy-arn"])
    else:
        assert fix[2] == "delete-role-policy"
        iam.delete_role_policy(RoleName=options["--role-name"], PolicyName=options["--policy-name"])
    row = next(line for line in cli(*DOCTOR).out.splitlines() if "TVM role" in line)
    assert row.startswith("OK"), row


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
    # so the fix doctor prints is a new bucket in the app's region, not vector-bucket on this one
    command = re.search(r"`(python -m scripts vector-bucket [^`]+)`", row.split("-> fix: ", 1)[1])
    assert command and "mem-outbox" not in row.split("-> fix: ", 1)[1], row
    made = cli(*shlex.split(command.group(1).replace("<new name>", "mem-outbox-2"))[3:], *R)
    assert made.code == 0 and "outbox bucket mem-outbox-2" in made.out, made.out


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


def test_a_classic_index_is_drift_that_onboard_fixes(aws, cli, bedrock, monkeypatch) -> None:
    """A CLASSIC index (the default in vector buckets created before 2026-09-30) applies the
    per-user filter during the vector search, so a user whose memories are a small part of the
    tenant's index gets fewer than topK of them: `tenant onboard` moves it to ENHANCED. doctor
    must not call it OK while its own fix command would change it. moto reports no index mode:
    GetIndex's answer gets the one the service reports."""
    _full_setup(cli)
    real = doctor_module.aws_client

    def classic(service: str, region: str):
        client = real(service, region)
        if service == "s3vectors":
            def mode(parsed, **_):
                if "index" in parsed:
                    parsed["index"]["indexMode"] = "CLASSIC"
            client.meta.events.register("after-call.s3vectors.GetIndex", mode)
        return client

    monkeypatch.setattr(doctor_module, "aws_client", classic)
    bedrock.append(("ok", MODEL))
    result = cli(*DOCTOR)
    row = next(line for line in result.out.splitlines() if "memory-acme" in line)
    assert result.code == 3 and row.startswith("DRIFT") and "CLASSIC" in row, result.out
    assert "fix: python -m scripts tenant onboard --bucket mem-bucket --tenant acme" in row


def test_a_trust_policy_naming_a_deleted_execution_role_is_drift(aws, cli, bedrock) -> None:
    """IAM stores a role named in a trust policy by its unique id; once that role is deleted the
    policy shows the id (AROA...) and no longer matches anyone, not even a role re-created under
    the same name (IAM user guide, role trust policy examples). A runtime role re-created with
    `runtime-role` then has every tenant's AssumeRole refused: doctor must not call the TVM role
    OK. Re-running `tvm-role` writes the ARN again (it differs from the stored document)."""
    _full_setup(cli)
    iam = boto3.client("iam", region_name="us-east-1")
    trust = iam.get_role(RoleName="agent-memory-tvm")["Role"]["AssumeRolePolicyDocument"]
    for statement in trust["Statement"]:
        statement["Principal"]["AWS"] = "AROAEXAMPLEDELETED123"  # how IAM shows the deleted role
    iam.update_assume_role_policy(RoleName="agent-memory-tvm", PolicyDocument=json.dumps(trust))
    bedrock.extend([("ok", MODEL), ("ok", MODEL)])
    result = cli(*DOCTOR)
    row = next(line for line in result.out.splitlines() if "TVM role" in line)
    assert result.code == 3 and row.startswith("DRIFT") and "AROAEXAMPLEDELETED123" in row, result.out
    assert "fix: python -m scripts tvm-role" in row
    assert cli("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC).code == 0
    assert cli(*DOCTOR).code == 0


def test_doctor_given_the_outbox_but_not_its_key_checks_the_key_the_role_grants(aws, cli, bedrock) -> None:
    """The deployment order runs doctor with --outbox-bucket only. For an outbox with a
    customer-managed key (tvm-role --outbox-kms-key-arn) that setup is fine, yet doctor called it
    drift and printed a `tvm-role` fix without the key: running it takes the key away from every
    tenant session, and each outbox write of the app (AGENT_OUTBOX_KMS_KEY_ID) is then refused.
    The key the role grants for that bucket is checked as tvm-role writes it (and kept in the
    fix); another prefix is still drift."""
    _full_setup(cli)
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    tvm = ("tvm-role", *R, "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--outbox-bucket", "mem-outbox")
    assert cli("vector-bucket", *R, "--bucket", "mem-bucket", "--outbox-bucket", "mem-outbox").code == 0
    assert cli(*tvm, "--outbox-kms-key-arn", key).code == 0
    bedrock.extend([("ok", MODEL)] * 3)
    ok = cli(*DOCTOR, "--outbox-bucket", "mem-outbox")
    assert ok.code == 0, ok.out
    other = cli(*DOCTOR, "--outbox-bucket", "mem-outbox", "--outbox-prefix", "ob")
    assert other.code == 3 and "differs from the ABAC policy" in other.out, other.out
    assert f"--outbox-prefix ob --outbox-kms-key-arn {key}" in other.out  # its fix keeps the key


CHAT = "amazon.nova-pro-v1:0"


def _deploy_under_other_names(cli, *agentcore_flags: str) -> dict[str, str]:
    """A setup whose names are not doctor's defaults, then `agentcore` writing ./agentcore.env
    (what the deployed app reads); returns the pool and client ids."""
    setup = outputs(cli("cognito", "setup", *R, "--pool-name", "prod-users").out)
    pool_id, client_id = setup["user pool id"], setup["app client id"]
    boto3.client("iam", region_name="us-east-1").create_role(RoleName="agentcore-runtime", AssumeRolePolicyDocument="{}")
    for argv in (
        ("vector-bucket", *R, "--bucket", "prod-vectors", "--outbox-bucket", "prod-outbox"),
        ("tvm-role", *R, "--role-name", "prod-tvm", "--bucket", "prod-vectors", "--execution-role-arn", EXEC,
         "--outbox-bucket", "prod-outbox", "--outbox-prefix", "ob"),
        ("tenant", "onboard", *R, "--bucket", "prod-vectors", "--tenant", "acme"),
        ("agentcore", *R, "--pool-id", pool_id, "--client-id", client_id, "--execution-role-arn", EXEC,
         "--bucket", "prod-vectors", "--outbox-bucket", "prod-outbox", "--outbox-prefix", "ob",
         "--tvm-role-arn", "arn:aws:iam::123456789012:role/prod-tvm", "--model-id", CHAT, *agentcore_flags),
    ):  # fmt: skip
        result = cli(*argv)
        assert result.code == 0, result.out + result.err
    return {"pool": pool_id, "client": client_id}


def test_doctor_checks_what_agentcore_env_deploys_not_its_own_defaults(aws, cli, bedrock, monkeypatch) -> None:
    """The deployed app reads agentcore.env; doctor checked its own defaults and flags instead
    (pool agent-memory-users, role agent-memory-tvm, a --bucket it required): a deployment under
    other names was reported MISSING, and a typo in the file went unseen. It now reads the file
    the runtime reads, with the app's own loader, and says which. The shell's AWS region is not
    the runtime's: the file's AGENT_REGION is used."""
    ids = _deploy_under_other_names(cli)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    result = cli("doctor", "--tenant", "acme")
    assert result.code == 0, result.out + result.err
    assert result.out.splitlines()[0] == "== doctor (settings file: agentcore.env) =="
    for resource in (f"user pool {ids['pool']}", f"app client {ids['client']}", "TVM role prod-tvm",
                     "vector bucket prod-vectors", "outbox bucket prod-outbox", "index memory-acme", f"model {CHAT}"):  # fmt: skip
        assert f"OK      {resource}" in result.out, result.out

    env = Path("agentcore.env")
    env.write_text(env.read_text().replace("AGENT_VECTOR_BUCKET=prod-vectors", "AGENT_VECTOR_BUCKET=prod-vectorz"))
    typo = cli("doctor")
    assert typo.code != 0 and "MISSING  vector bucket prod-vectorz" in typo.out, typo.out  # and the TVM role drifts
    assert cli("doctor", "--bucket", "prod-vectors").code == 0  # a flag given wins over the file
    monkeypatch.setenv("AGENT_VECTOR_BUCKET", "prod-vectors")  # the environment over the file, as in the runtime
    overridden = cli("doctor")
    assert overridden.code == 0 and "overridden by the environment: AGENT_VECTOR_BUCKET" in overridden.out.splitlines()[0]


def test_without_a_model_id_in_the_settings_doctor_checks_the_model_the_app_would_use(aws, cli, bedrock) -> None:
    """AGENT_MODEL_PROVIDER=bedrock without AGENT_MODEL_ID: the app runs Strands' default model
    (region-prefixed), not ``agentcore``'s default, and that is the one doctor checks."""
    from agent.chat_models import build_model

    _deploy_under_other_names(cli)
    env = Path("agentcore.env")
    env.write_text("".join(line for line in env.read_text().splitlines(True) if not line.startswith("AGENT_MODEL_ID=")))
    assert "AGENT_MODEL_PROVIDER=bedrock" in env.read_text()
    strands_default = build_model("bedrock", region="us-east-1").get_config()["model_id"]
    assert strands_default != DEFAULT_CHAT_MODEL
    bedrock.extend([("profile", strands_default), ("ok", MODEL)])
    result = cli("doctor", "--tenant", "acme")
    assert result.code == 0, result.out + result.err
    assert f"OK      model {strands_default}" in result.out and DEFAULT_CHAT_MODEL not in result.out, result.out


@pytest.mark.parametrize(
    ("edits", "checked"),
    [
        ({"AGENT_MODEL_PROVIDER": "Bedrock"}, [CHAT, MODEL]),  # the app reads the provider in any case
        ({"AGENT_MODEL_PROVIDER": "openai", "AGENT_MODEL_BASE_URL": "https://llm.example.com/v1"}, [MODEL]),
        ({"AGENT_EMBEDDER": "local"}, [CHAT]),
        ({"AGENT_MODEL_PROVIDER": "openai", "AGENT_MODEL_BASE_URL": "https://llm.example.com/v1", "AGENT_EMBEDDER": "local"}, []),
    ],
)
def test_doctor_checks_the_bedrock_models_the_settings_app_calls_and_no_other(
    aws, cli, bedrock, edits: dict[str, str], checked: list[str]
) -> None:
    """A hand-written file whose app calls no Bedrock chat model (another provider), or no
    Bedrock embedding model (the local embedder), had agentcore's default models checked (and a
    'Bedrock' provider, which the app reads as bedrock, too)."""
    _deploy_under_other_names(cli)
    env = Path("agentcore.env")
    lines = [line for line in env.read_text().splitlines() if line.partition("=")[0] not in edits]
    env.write_text("\n".join([*lines, *(f"{k}={v}" for k, v in edits.items())]) + "\n")
    bedrock.extend(("ok", model) for model in checked)
    result = cli("doctor")  # no index: acme's is 1024-d, the local embedder's 256-d
    assert result.code == 0, result.out + result.err
    assert [line.split()[2] for line in result.out.splitlines() if line.startswith("OK      model ")] == checked
    assert DEFAULT_CHAT_MODEL not in result.out


def test_doctor_checks_indexes_against_the_settings_embedder_s_dimension(aws, cli, bedrock) -> None:
    """With AGENT_EMBEDDER=local the app's indexes are 256-d (WordLlama); doctor compared them with
    its own default, 1024 (Nova 2), and reported a correct index as drift."""
    _deploy_under_other_names(cli)
    assert cli("tenant", "onboard", *R, "--bucket", "prod-vectors", "--tenant", "beta", "--dimension", "256").code == 0
    env = Path("agentcore.env")
    env.write_text(env.read_text().replace("AGENT_EMBEDDER=bedrock", "AGENT_EMBEDDER=local"))
    bedrock.append(("ok", CHAT))
    result = cli("doctor", "--tenant", "beta")
    assert result.code == 0, result.out + result.err
    assert any(line.split() == ["OK", "index", "memory-beta", "dimension", "256"] for line in result.out.splitlines())
    bedrock.append(("ok", CHAT))
    assert cli("doctor", "--tenant", "beta", "--dimension", "1024").code == 3  # a flag given wins


def test_doctor_reads_the_settings_file_it_is_given_and_refuses_one_the_app_would(
    aws, cli, bedrock, tmp_path, monkeypatch
) -> None:
    ids = _deploy_under_other_names(cli)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    elsewhere = tmp_path / "deploy" / "prod.env"
    elsewhere.parent.mkdir()
    Path("agentcore.env").rename(elsewhere)
    none = cli("doctor")
    assert none.code == 2 and "needs --bucket" in none.err
    given = cli("doctor", "--settings-file", str(elsewhere))
    assert given.code == 0 and f"settings file: {elsewhere}" in given.out.splitlines()[0], given.out
    assert f"user pool {ids['pool']}" in given.out
    monkeypatch.setenv("AGENT_SETTINGS_FILE", str(elsewhere))  # the runtime's own pointer
    assert f"settings file: {elsewhere}" in cli("doctor").out.splitlines()[0]
    monkeypatch.delenv("AGENT_SETTINGS_FILE")
    missing = cli("doctor", "--settings-file", str(tmp_path / "nope.env"))
    assert missing.code == 1 and "nope.env not found" in missing.err
    elsewhere.write_text(elsewhere.read_text() + "AGENT_MODEL_API_KEY=sk-123\n")  # the app refuses secrets there
    refused = cli("doctor", "--settings-file", str(elsewhere))
    assert refused.code == 1 and "AGENT_MODEL_API_KEY is a secret" in refused.err and "sk-123" not in refused.err


def test_a_pool_or_client_id_of_the_settings_that_names_nothing_is_missing(aws, cli, bedrock) -> None:
    ids = _deploy_under_other_names(cli)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    env = Path("agentcore.env")
    text = env.read_text()
    env.write_text(text.replace(f"AGENT_COGNITO_CLIENT_IDS={ids['client']}", f"AGENT_COGNITO_CLIENT_IDS={ids['client']},typo1"))
    result = cli("doctor")
    assert result.code == 1 and "MISSING  app client typo1" in result.out and f"OK       app client {ids['client']}" in result.out, result.out
    env.write_text(text.replace(ids["pool"], "us-east-1_Typo1"))
    result = cli("doctor")
    assert "MISSING  user pool us-east-1_Typo1" in result.out and "agentcore` with the ids it prints" in result.out, result.out


def _deploy_with_a_client_hiding_the_tenant(cli) -> dict[str, str]:
    """A deployment whose app client cannot read custom:tenantId (its id tokens name no tenant)."""
    ids = _deploy_under_other_names(cli)
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    client = idp.describe_user_pool_client(UserPoolId=ids["pool"], ClientId=ids["client"])["UserPoolClient"]
    idp.update_user_pool_client(UserPoolId=ids["pool"], ClientId=ids["client"], ReadAttributes=["email"],
                                ExplicitAuthFlows=client["ExplicitAuthFlows"])  # fmt: skip
    return ids


def test_doctor_reports_a_client_whose_id_tokens_name_no_tenant(aws, cli, bedrock) -> None:
    """A client without custom:tenantId among its read attributes issues id tokens without it
    (every request refused); that matters only where the app accepts id tokens."""
    ids = _deploy_with_a_client_hiding_the_tenant(cli)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)] * 2)
    drift = cli("doctor", "--tenant", "acme")
    assert drift.code != 0 and f"DRIFT   app client {ids['client']}" in drift.out, drift.out
    assert "cannot read custom:tenantId" in drift.out
    env = Path("agentcore.env")
    env.write_text(env.read_text().replace("AGENT_TOKEN_USES=id\n", "AGENT_TOKEN_USES=access\n"))
    assert cli("doctor", "--tenant", "acme").code == 0  # access tokens carry the trigger's claim


def test_the_fix_printed_for_a_drifted_app_client_run_as_written_clears_it(aws, cli, bedrock) -> None:
    """`cognito setup` reports an existing client's drift and never changes it, so it is no fix for
    that drift (doctor printed it): doctor names a new client made by `cognito setup --client-name`,
    which, deployed with `agentcore --client-id`, is OK."""
    ids = _deploy_with_a_client_hiding_the_tenant(cli)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)] * 2)
    row = next(line for line in cli("doctor", "--tenant", "acme").out.splitlines() if "app client" in line)
    assert row.startswith("DRIFT"), row
    command = re.search(r"`(python -m scripts cognito setup [^`]*)`", row.split("-> fix: ", 1)[1])
    assert command, row
    made = cli(*shlex.split(command.group(1).replace("<new name>", "app-v2"))[3:], *R)
    assert made.code == 0, made.out
    new_client = outputs(made.out)["app client id"]
    deployed = ("agentcore", *R, "--pool-id", ids["pool"], "--client-id", new_client, "--execution-role-arn", EXEC,
                "--bucket", "prod-vectors", "--outbox-bucket", "prod-outbox", "--outbox-prefix", "ob",
                "--tvm-role-arn", "arn:aws:iam::123456789012:role/prod-tvm", "--model-id", CHAT)  # fmt: skip
    assert cli(*deployed).code == 0
    ok = cli("doctor", "--tenant", "acme")
    assert ok.code == 0 and f"OK      app client {new_client}" in ok.out, ok.out


def test_doctor_checks_the_app_secret_the_settings_name_and_that_the_execution_role_may_read_it(
    aws, cli, bedrock
) -> None:
    """AGENT_SECRETS_ID (written by ``agentcore --secrets-id``): the secret exists, is a JSON object
    of secret settings, and the execution role's policy has the statements ``agentcore`` grants."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="prod/app", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": "k" * 32}))["ARN"]
    _deploy_under_other_names(cli, "--secrets-id", "prod/app")
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    doctor = ("doctor", "--tenant", "acme", "--execution-role-arn", EXEC)
    ok = cli(*doctor)
    assert ok.code == 0, ok.out + ok.err
    assert _row(ok.out, f"secret {arn}") == ["OK", arn], ok.out

    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"AGENT_TOP_K": "5", "AGENT_LOG_HASH_KEY": "v" * 32}))
    drift = cli(*doctor)
    assert drift.code == 3 and _row(drift.out, f"secret {arn}")[0] == "DRIFT"
    assert "AGENT_TOP_K is not a secret setting" in drift.out
    assert "v" * 32 not in drift.out + drift.err

    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"AGENT_LOG_HASH_KEY": "k" * 32}))
    other_role = cli(*doctor[:-1], "arn:aws:iam::123456789012:role/agent-memory-tvm")
    assert other_role.code == 3 and "has no inline policy agent-memory-app" in other_role.out
    boto3.client("iam", region_name="us-east-1").delete_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")
    boto3.client("iam", region_name="us-east-1").put_role_policy(
        RoleName="agentcore-runtime",
        PolicyName="agent-memory-app",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "ReadAppSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other-AbCdEf"}]}),
    )  # fmt: skip
    unreadable = cli(*doctor)
    assert unreadable.code == 3 and "may not read it (no ReadAppSecret statement)" in unreadable.out
    assert "--secrets-id" in unreadable.out  # the fix grants it

    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    missing = cli(*doctor)
    assert missing.code == 1 and _row(missing.out, f"secret {arn}")[:3] == ["MISSING", "no", "such"], missing.out


def test_a_secret_kms_cannot_decrypt_gets_the_key_as_its_fix_not_a_new_value(aws, cli, bedrock, monkeypatch) -> None:
    """Secrets Manager answers DecryptionFailure when its KMS key is disabled or refuses it: a new
    value (put-secret-value, the fix doctor printed) is encrypted with that same key and fails too.
    The fix is the key."""
    from botocore.exceptions import ClientError

    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="prod/app", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": "k" * 32})
    )
    _deploy_under_other_names(cli, "--secrets-id", "prod/app")
    wrapped = doctor_module.aws_client

    def client(service: str, region: str, **kwargs):
        c = wrapped(service, region, **kwargs)
        if service == "secretsmanager":
            def refuse(**_):
                raise ClientError({"Error": {"Code": "DecryptionFailure", "Message": "KMS key disabled"}}, "GetSecretValue")

            c.get_secret_value = refuse
        return c

    monkeypatch.setattr(doctor_module, "aws_client", client)
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    out = cli("doctor", "--tenant", "acme", "--execution-role-arn", EXEC).out
    (row,) = [line for line in out.splitlines() if line.split()[1:2] == ["secret"]]
    assert row.startswith("DRIFT") and "AWS KMS cannot decrypt it" in row, row
    fix = row.split("-> fix: ", 1)[1]
    assert "KMS key" in fix and "put-secret-value" not in fix, row


def test_a_secret_scheduled_for_deletion_or_without_a_value_is_a_row_not_the_end_of_the_report(
    aws, cli, bedrock
) -> None:
    """GetSecretValue refuses both (InvalidRequestException; ResourceNotFoundException for the
    AWSCURRENT version) though DescribeSecret finds them: doctor ended with that error and no
    report at all. Each is now its row, MISSING with the command that mends it."""
    sm = boto3.client("secretsmanager", region_name="us-east-1")
    arn = sm.create_secret(Name="prod/app", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": "k" * 32}))["ARN"]
    _deploy_under_other_names(cli, "--secrets-id", "prod/app")
    bedrock.extend([("ok", CHAT), ("ok", MODEL)] * 2)
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    deleted = cli("doctor", "--tenant", "acme", "--execution-role-arn", EXEC)
    assert deleted.code == 1 and _row(deleted.out, f"secret {arn}")[:4] == ["MISSING", "scheduled", "for", "deletion"]
    assert f"fix: aws secretsmanager restore-secret --secret-id {arn}" in deleted.out
    assert _row(deleted.out, f"model {MODEL}")[0] == "OK"  # the rows after it are there
    empty = sm.create_secret(Name="prod/empty")["ARN"]
    valueless = cli("doctor", "--tenant", "acme", "--execution-role-arn", EXEC, "--secrets-id", "prod/empty")
    assert valueless.code == 1 and _row(valueless.out, "secret prod/empty")[:4] == ["MISSING", "it", "has", "no"]
    assert f"fix: aws secretsmanager put-secret-value --secret-id {empty}" in valueless.out
    assert _row(valueless.out, f"model {MODEL}")[0] == "OK"


def _row(out: str, resource: str) -> list[str]:
    """The status and the detail's words of the report's row for ``resource``."""
    (line,) = [line for line in out.splitlines() if f" {resource} " in f"{line} "]
    status, rest = line.split(maxsplit=1)
    return [status, *rest.removeprefix(resource).split()]


def test_the_help_states_where_doctor_takes_each_default_from() -> None:
    """doctor reads its region and outbox from the deployed settings, not only from the shell: its
    --help says so rather than the other commands' "default: $AWS_REGION" or tvm-role's "grant each tenant"."""
    from scripts.__main__ import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    helps = {o: a.help for a in sub.choices["doctor"]._actions for o in a.option_strings}
    assert "AGENT_REGION" in helps["--region"]
    for flag, setting in (("--outbox-bucket", "AGENT_OUTBOX_BUCKET"), ("--outbox-prefix", "AGENT_OUTBOX_PREFIX"),
                          ("--outbox-kms-key-arn", "AGENT_OUTBOX_KMS_KEY_ID")):
        assert f"the settings' {setting}" in helps[flag] and "tenant" not in helps[flag], flag


@pytest.mark.parametrize("given", ["prod-runtime", "arn:aws:iam::123456789012:user/prod-runtime"])
def test_an_execution_role_arn_that_is_not_a_role_arn_is_refused_not_replaced_by_the_default_role(
    given: str, cli, capsys
) -> None:
    """A role's name (or a user's ARN) given to --execution-role-arn: doctor checked the default
    role instead, and reported that role's policy as the secret's drift (a usage error, exit 2)."""
    with pytest.raises(SystemExit) as exited:
        cli(*DOCTOR, "--execution-role-arn", given)
    assert exited.value.code == 2
    assert f"--execution-role-arn: {given!r} is not an IAM role ARN" in capsys.readouterr().err


def test_a_secret_whose_key_the_operator_may_not_use_is_denied_naming_kms_decrypt(aws, cli, bedrock, monkeypatch) -> None:
    """Secrets Manager answers a caller without kms:Decrypt on the secret's customer managed key
    AccessDeniedException "Access to KMS is not allowed" (moto has no key policies: answered
    here as the service does): the DENIED row named secretsmanager:GetSecretValue, which the
    operator had."""
    from botocore.awsrequest import AWSResponse

    sm = boto3.client("secretsmanager", region_name="us-east-1")
    sm.create_secret(Name="prod/app", SecretString=json.dumps({"AGENT_LOG_HASH_KEY": "k" * 32}))
    _deploy_under_other_names(cli, "--secrets-id", "prod/app")
    bedrock.extend([("ok", CHAT), ("ok", MODEL)])
    real = doctor_module.aws_client

    def refusing_kms(service: str, region: str):
        client = real(service, region)
        if service == "secretsmanager":
            error = {"Error": {"Code": "AccessDeniedException", "Message": "Access to KMS is not allowed"},
                     "ResponseMetadata": {"HTTPStatusCode": 400}}  # fmt: skip
            response = AWSResponse("https://secretsmanager", 400, {}, None)
            client.meta.events.register_first(
                "before-call.secretsmanager.GetSecretValue", lambda **_: (response, error)
            )
        return client

    monkeypatch.setattr(doctor_module, "aws_client", refusing_kms)
    result = cli("doctor", "--tenant", "acme", "--execution-role-arn", EXEC)
    (row,) = [line for line in result.out.splitlines() if " secret arn:" in line]
    assert row.startswith("DENIED") and "missing IAM permission kms:Decrypt" in row, result.out


PASTED = '{"AGENT_MODEL_API_KEY": "sk-pasted-0123456789-very-secret"}'


def test_a_secret_value_in_the_settings_agent_secrets_id_is_refused_never_echoed(
    aws, cli, bedrock, tmp_path: Path, monkeypatch
) -> None:
    """A value pasted where the secret's id goes in the deployed settings (AGENT_SECRETS_ID) was
    the name of doctor's secret row, printed whole with the report (--secrets-id: test_cli_usage)."""
    bedrock.extend([("ok", MODEL)])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AGENT_SETTINGS_FILE", raising=False)
    (tmp_path / "agentcore.env").write_text(f"AGENT_AUTH_MODE=dev\nAGENT_SECRETS_ID={PASTED}\n")
    deployed = cli(*DOCTOR)
    assert deployed.code == 1 and "AGENT_SECRETS_ID is not a secret id" in deployed.err, deployed.out + deployed.err
    assert "very-secret" not in deployed.out + deployed.err
