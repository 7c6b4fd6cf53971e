"""tvm-role: exact policy JSON, idempotence, drift handling and access denial (moto IAM)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import boto3
import pytest
from moto.core import set_initial_no_auth_action_count

import memory.aws
from scripts.common import ScriptError
from scripts.tvm_role import permission_policy, trust_policy

ACCOUNT = "123456789012"
EXEC = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"
ARGS = ("tvm-role", "--bucket", "mem-bucket", "--execution-role-arn", EXEC, "--region", "us-east-1")
TAG_CONDITION = {
    "StringLike": {"aws:RequestTag/TenantID": "?*"},
    "ForAllValues:StringEquals": {"aws:TagKeys": ["TenantID"]},
}


def test_permission_policy_is_exactly_the_tenant_index_statement() -> None:
    assert permission_policy("eu-west-1", ACCOUNT, "mem-bucket") == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OwnTenantIndexOnly",
                "Effect": "Allow",
                "Action": [
                    "s3vectors:PutVectors",
                    "s3vectors:QueryVectors",
                    "s3vectors:GetVectors",
                    "s3vectors:ListVectors",
                    "s3vectors:DeleteVectors",
                    "s3vectors:GetIndex",
                ],
                "Resource": "arn:aws:s3vectors:eu-west-1:123456789012:bucket/mem-bucket/index/"
                "memory-${aws:PrincipalTag/TenantID}",
            }
        ],
    }


def test_trust_policy_allows_only_named_principals_with_a_tenant_tag() -> None:
    extra = f"arn:aws:iam::{ACCOUNT}:role/ops"
    assert trust_policy([EXEC, extra, EXEC], account=ACCOUNT) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RuntimeAssumesWithTenantTag",
                "Effect": "Allow",
                "Principal": {"AWS": [EXEC, extra]},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": TAG_CONDITION,
            }
        ],
    }


def test_service_principals_are_pinned_to_source_account_and_arn() -> None:
    source = f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/memory_agent-AbCdEf1234"
    doc = trust_policy(
        [], account=ACCOUNT, service_principals=["bedrock-agentcore.amazonaws.com"], source_arn=source
    )
    assert doc["Statement"] == [
        {
            "Sid": "ServiceAssumesWithTenantTag",
            "Effect": "Allow",
            "Principal": {"Service": ["bedrock-agentcore.amazonaws.com"]},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {
                **TAG_CONDITION,
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnEquals": {"aws:SourceArn": source},
            },
        }
    ]


def test_trust_policy_without_principals_is_refused() -> None:
    with pytest.raises(ScriptError):
        trust_policy([], account=ACCOUNT)


@pytest.mark.parametrize(
    "principal",
    [
        "*",
        f"arn:aws:iam::{ACCOUNT}:root",
        "arn:aws:iam::999988887777:root",
        ACCOUNT,
        f"arn:aws:iam::{ACCOUNT}:role/*",
        f"arn:aws:iam::{ACCOUNT}:role/agent*",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/someone",
    ],
)
def test_wildcard_root_and_account_principals_are_refused_and_nothing_is_created(aws, cli, principal) -> None:
    result = cli(*ARGS, "--principal", principal)
    assert result.code == 2
    assert "refusing trust principal" in result.err
    assert boto3.client("iam", region_name="us-east-1").list_roles()["Roles"] == []


@pytest.mark.parametrize(
    "source",
    [
        None,
        f"arn:aws:bedrock-agentcore:us-east-1:{ACCOUNT}:runtime/*",
        "arn:aws:bedrock-agentcore:us-east-1:999988887777:runtime/memory_agent-AbCdEf1234",
        "not-an-arn",
    ],
)
def test_service_principal_needs_an_exact_source_arn_of_this_account(aws, cli, source) -> None:
    argv = [*ARGS, "--service-principal", "bedrock-agentcore.amazonaws.com"]
    result = cli(*argv, *(("--source-arn", source) if source else ()))
    assert result.code == 2
    assert "needs --source-arn" in result.err
    assert boto3.client("iam", region_name="us-east-1").list_roles()["Roles"] == []


def test_creates_role_then_second_run_changes_nothing(aws, cli) -> None:
    first = cli(*ARGS)
    assert first.code == 0, first.err
    assert "CREATED" in first.out and f"arn:aws:iam::{ACCOUNT}:role/agent-memory-tvm" in first.out

    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.get_role(RoleName="agent-memory-tvm")["Role"]
    assert role["AssumeRolePolicyDocument"] == trust_policy([EXEC], account=ACCOUNT)
    assert role["MaxSessionDuration"] == 3600
    policy = iam.get_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access")[
        "PolicyDocument"
    ]
    assert policy == permission_policy("us-east-1", ACCOUNT, "mem-bucket")
    assert iam.list_role_policies(RoleName="agent-memory-tvm")["PolicyNames"] == ["tenant-index-access"]

    second = cli(*ARGS)
    assert second.code == 0
    assert "CREATED" not in second.out and "UPDATED" not in second.out
    assert "Nothing to change" in second.out


def test_dry_run_creates_nothing(aws, cli) -> None:
    result = cli(*ARGS, "--dry-run")
    assert result.code == 0 and "WOULD CREATE" in result.out
    assert boto3.client("iam", region_name="us-east-1").list_roles()["Roles"] == []


def test_drifted_trust_policy_is_reported_and_restored(aws, cli) -> None:
    cli(*ARGS)
    iam = boto3.client("iam", region_name="us-east-1")
    loose = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    iam.update_assume_role_policy(RoleName="agent-memory-tvm", PolicyDocument=json.dumps(loose))

    planned = cli(*ARGS, "--dry-run")
    assert "WOULD UPDATE" in planned.out and "drift" in planned.out
    assert iam.get_role(RoleName="agent-memory-tvm")["Role"]["AssumeRolePolicyDocument"] == loose

    fixed = cli(*ARGS)
    assert "UPDATED" in fixed.out and "trust policy" in fixed.out
    assert iam.get_role(RoleName="agent-memory-tvm")["Role"]["AssumeRolePolicyDocument"] == trust_policy(
        [EXEC], account=ACCOUNT
    )


def test_extra_policy_on_the_role_is_drift_and_left_alone(aws, cli) -> None:
    cli(*ARGS)
    iam = boto3.client("iam", region_name="us-east-1")
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    arn = iam.create_policy(PolicyName="AdministratorAccess", PolicyDocument=json.dumps(admin))["Policy"][
        "Arn"
    ]
    iam.attach_role_policy(RoleName="agent-memory-tvm", PolicyArn=arn)
    result = cli(*ARGS)
    assert result.code == 3
    assert "DRIFT" in result.out and "AdministratorAccess" in result.out and "NOT overwritten" in result.out
    attached = iam.list_attached_role_policies(RoleName="agent-memory-tvm")["AttachedPolicies"]
    assert [p["PolicyName"] for p in attached] == ["AdministratorAccess"]


@set_initial_no_auth_action_count(4)
def test_missing_permission_names_the_action(aws, cli, monkeypatch) -> None:
    iam = boto3.client("iam", region_name="us-east-1")
    iam.create_user(UserName="ops")
    allow = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iam:GetRole", "sts:GetCallerIdentity"], "Resource": "*"}
        ],
    }
    iam.put_user_policy(UserName="ops", PolicyName="read-only", PolicyDocument=json.dumps(allow))
    key = iam.create_access_key(UserName="ops")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(memory.aws, "_default_session", None)

    result = cli(*ARGS)
    assert result.code == 4
    assert "iam:CreateRole" in result.err and "access denied" in result.err
    assert os.environ["AWS_ACCESS_KEY_ID"] not in result.err


def test_with_an_outbox_the_policy_adds_exactly_the_tenant_prefix_statements() -> None:
    policy = permission_policy("eu-west-1", ACCOUNT, "mem-bucket", outbox_bucket="mem-outbox", outbox_prefix="obx")
    assert policy["Statement"][0] == permission_policy("eu-west-1", ACCOUNT, "mem-bucket")["Statement"][0]
    assert policy["Statement"][1:] == [
        {
            "Sid": "OwnTenantOutboxObjectsOnly",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            "Resource": [
                "arn:aws:s3:::mem-outbox/obx/${aws:PrincipalTag/TenantID}/pending/*",
                "arn:aws:s3:::mem-outbox/obx/${aws:PrincipalTag/TenantID}/claims/*",
                "arn:aws:s3:::mem-outbox/obx/${aws:PrincipalTag/TenantID}/dead/*",
            ],
        },
        {
            "Sid": "ReadOwnTenantErasureMarkersOnly",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::mem-outbox/obx/${aws:PrincipalTag/TenantID}/erasures/*",
        },
        {
            "Sid": "ListOwnTenantOutboxOnly",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::mem-outbox",
            "Condition": {"StringLike": {"s3:prefix": "obx/${aws:PrincipalTag/TenantID}/*"}},
        },
    ]


def test_outbox_bucket_argument_puts_the_outbox_statements_on_the_role(aws, cli) -> None:
    assert cli(*ARGS).code == 0
    result = cli(*ARGS, "--outbox-bucket", "mem-outbox")
    assert result.code == 0 and "UPDATED" in result.out  # the old policy lacked the outbox
    stored = boto3.client("iam").get_role_policy(RoleName="agent-memory-tvm", PolicyName="tenant-index-access")
    assert stored["PolicyDocument"] == permission_policy("us-east-1", ACCOUNT, "mem-bucket", outbox_bucket="mem-outbox")
    assert "Nothing to change" in cli(*ARGS, "--outbox-bucket", "mem-outbox").out


KEY_ARN = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_with_an_outbox_kms_key_the_policy_lets_tenants_use_it_only_through_s3() -> None:
    """SSE-KMS with a customer-managed key: S3 asks KMS for data keys with the caller's (the
    tenant session's) credentials, so the role needs the key's actions, and only via S3."""
    base = permission_policy("eu-west-1", ACCOUNT, "mem-bucket", outbox_bucket="mem-outbox")
    policy = permission_policy("eu-west-1", ACCOUNT, "mem-bucket", outbox_bucket="mem-outbox", outbox_kms_key_arn=KEY_ARN)
    assert policy["Statement"][:-1] == base["Statement"]
    assert policy["Statement"][-1] == {
        "Sid": "OutboxKmsKeyThroughS3Only",
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": KEY_ARN,
        "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
    }


@pytest.mark.parametrize("key", ["1234abcd-12ab-34cd-56ef-1234567890ab", "alias/outbox", "*",
                                 KEY_ARN.replace("eu-west-1", "us-east-1"), KEY_ARN.replace(ACCOUNT, "444455556666")])
def test_an_outbox_kms_key_must_be_a_key_arn_of_the_region_and_account(key: str) -> None:
    with pytest.raises(ScriptError, match="must be a key ARN"):
        permission_policy("eu-west-1", ACCOUNT, "mem-bucket", outbox_bucket="mem-outbox", outbox_kms_key_arn=key)


def test_the_operations_guide_shows_exactly_the_permission_documents() -> None:
    """docs/operations.md shows the tvm-role statements "exactly": they are what the command attaches
    (placeholders ``<region>``, ``<account>``, ``<bucket>``, ``<OB>``, ``<prefix>``, ``<KEY>`` filled in)."""
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    text = (Path(__file__).resolve().parents[3] / "docs" / "operations.md").read_text()
    section = text.split("### `tvm-role`", 1)[1].split("\n### ", 1)[0]
    for placeholder, value in (("<region>", "us-east-1"), ("<account>", ACCOUNT), ("<bucket>", "mem-bucket"),
                               ("<OB>", "outbox-bucket"), ("<prefix>", "outbox"), ("<KEY>", key)):
        section = section.replace(placeholder, value)
    index, outbox, kms = re.findall(r"```json\n(.*?)\n```", section, re.S)
    statements = json.loads(index)["Statement"] + json.loads(f"[{outbox}]") + [json.loads(kms)]
    assert {"Version": "2012-10-17", "Statement": statements} == permission_policy(
        "us-east-1", ACCOUNT, "mem-bucket", outbox_bucket="outbox-bucket", outbox_kms_key_arn=key
    )
