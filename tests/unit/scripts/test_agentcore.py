"""agentcore: exact execution-role policy, yaml patching on a temp copy, idempotence, printed commands."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml

from scripts.agentcore_cmd import execution_role_policy, model_resources

ACCOUNT = "123456789012"
EXEC = f"arn:aws:iam::{ACCOUNT}:role/agentcore-runtime"
TVM = f"arn:aws:iam::{ACCOUNT}:role/agent-memory-tvm"
CONFIG = {
    "default_agent": "agent_memory",
    "agents": {
        "agent_memory": {
            "name": "agent_memory",
            "entrypoint": "agent/app.py",
            "platform": "linux/arm64",
            "aws": {"execution_role": None, "region": "us-east-1", "account": ACCOUNT},
            "request_header_configuration": {
                "requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Trace"]
            },
        }
    },
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / ".bedrock_agentcore.yaml"
    path.write_text("# toolkit config\n# keep me\n" + yaml.safe_dump(CONFIG, sort_keys=False))
    return path


@pytest.fixture
def role(aws) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "bedrock-agentcore.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    boto3.client("iam", region_name="us-east-1").create_role(
        RoleName="agentcore-runtime", AssumeRolePolicyDocument=json.dumps(trust)
    )


def _args(config: Path, *extra: str) -> tuple[str, ...]:
    return (
        "agentcore",
        "--region",
        "us-east-1",
        "--config",
        str(config),
        "--pool-id",
        "us-east-1_Pool",
        "--client-id",
        "client-1",
        "--execution-role-arn",
        EXEC,
        "--bucket",
        "mem-bucket",
        *extra,
    )


def test_model_resources_cover_foundation_models_and_inference_profiles() -> None:
    assert model_resources("us-east-1", ACCOUNT, "amazon.nova-2-multimodal-embeddings-v1:0") == [
        "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-2-multimodal-embeddings-v1:0"
    ]
    assert model_resources("us-east-1", ACCOUNT, "us.anthropic.claude-sonnet-4-20250514-v1:0") == [
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0",
        "arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0",
    ]


def test_multi_tenant_policy_is_exactly_bedrock_plus_tvm() -> None:
    policy = execution_role_policy(
        region="us-east-1",
        account=ACCOUNT,
        model_ids=["amazon.titan-x"],
        tvm_role_arn=TVM,
        bucket="mem-bucket",
        single_tenant_id=None,
    )
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "InvokeChosenModels",
                "Effect": "Allow",
                "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                "Resource": ["arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-x"],
            },
            {
                "Sid": "AssumeTenantRoleWithTag",
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": TVM,
            },
        ],
    }


def test_single_tenant_policy_grants_only_that_index() -> None:
    policy = execution_role_policy(
        region="us-east-1",
        account=ACCOUNT,
        model_ids=["m"],
        tvm_role_arn=None,
        bucket="mem-bucket",
        single_tenant_id="acme",
    )
    assert policy["Statement"][1] == {
        "Sid": "SingleTenantIndex",
        "Effect": "Allow",
        "Action": [
            "s3vectors:PutVectors",
            "s3vectors:QueryVectors",
            "s3vectors:GetVectors",
            "s3vectors:ListVectors",
            "s3vectors:DeleteVectors",
            "s3vectors:GetIndex",
        ],
        "Resource": f"arn:aws:s3vectors:us-east-1:{ACCOUNT}:bucket/mem-bucket/index/memory-acme",
    }
    assert len(policy["Statement"]) == 2


def test_patches_yaml_grants_role_prints_commands_then_is_idempotent(role, cli, config) -> None:
    first = cli(*_args(config, "--tvm-role-arn", TVM))
    assert first.code == 0, first.err
    agent = yaml.safe_load(config.read_text())["agents"]["agent_memory"]
    assert agent["authorizer_configuration"] == {
        "customJWTAuthorizer": {
            "discoveryUrl": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Pool/.well-known/openid-configuration",
            "allowedClients": ["client-1"],
        }
    }
    assert agent["request_header_configuration"]["requestHeaderAllowlist"] == [
        "X-Amzn-Bedrock-AgentCore-Runtime-Custom-Trace",
        "Authorization",
    ]
    assert agent["aws"]["execution_role"] == EXEC and agent["platform"] == "linux/arm64"
    assert config.read_text().startswith("# toolkit config\n# keep me\n")

    iam = boto3.client("iam", region_name="us-east-1")
    doc = iam.get_role_policy(RoleName="agentcore-runtime", PolicyName="agent-memory-app")["PolicyDocument"]
    assert {s["Sid"] for s in doc["Statement"]} == {"InvokeChosenModels", "AssumeTenantRoleWithTag"}

    assert "agentcore configure --non-interactive" in first.out
    assert "agentcore launch --env AGENT_REGION=us-east-1" in first.out
    assert f"AGENT_TVM_ROLE_ARN={TVM}" in first.out and "AGENT_COGNITO_CLIENT_IDS=client-1" in first.out

    before = config.read_text()
    second = cli(*_args(config, "--tvm-role-arn", TVM))
    assert second.code == 0 and "Nothing to change" in second.out
    assert config.read_text() == before


def test_dry_run_changes_neither_file_nor_role(role, cli, config) -> None:
    before = config.read_text()
    result = cli(*_args(config, "--tvm-role-arn", TVM, "--dry-run"))
    assert result.code == 0 and "WOULD UPDATE" in result.out and "WOULD CREATE" in result.out
    assert config.read_text() == before
    assert (
        boto3.client("iam", region_name="us-east-1").list_role_policies(RoleName="agentcore-runtime")[
            "PolicyNames"
        ]
        == []
    )


def test_multi_tenant_without_tvm_role_is_refused(role, cli, config) -> None:
    result = cli(*_args(config))
    assert result.code == 1 and "--tvm-role-arn" in result.err


def test_single_tenant_mode_validates_the_tenant(role, cli, config) -> None:
    bad = cli(*_args(config, "--tenant-mode", "single", "--single-tenant-id", "Bad_Tenant"))
    assert bad.code == 2
    good = cli(*_args(config, "--tenant-mode", "single", "--single-tenant-id", "acme"))
    assert good.code == 0 and "AGENT_SINGLE_TENANT_ID=acme" in good.out


def test_missing_config_is_reported_with_the_configure_step(role, cli, tmp_path) -> None:
    result = cli(*_args(tmp_path / "absent.yaml", "--tvm-role-arn", TVM))
    assert result.code == 1 and "MISSING" in result.out and "agentcore configure" in result.out


def test_patches_a_copy_of_the_projects_own_config(role, cli, tmp_path) -> None:
    shipped = Path(__file__).resolve().parents[3] / ".bedrock_agentcore.yaml"
    if not shipped.exists():
        pytest.skip("the project has no .bedrock_agentcore.yaml yet")
    copy = tmp_path / ".bedrock_agentcore.yaml"
    copy.write_text(shipped.read_text())
    result = cli(*_args(copy, "--tvm-role-arn", TVM))
    assert result.code == 0, result.err
    patched = copy.read_text()
    assert "REPLACE_USER_POOL_ID" not in yaml.safe_dump(yaml.safe_load(patched))
    agent = next(iter(yaml.safe_load(patched)["agents"].values()))
    assert agent["authorizer_configuration"]["customJWTAuthorizer"]["allowedClients"] == ["client-1"]
    assert "Authorization" in agent["request_header_configuration"]["requestHeaderAllowlist"]
    assert cli(*_args(copy, "--tvm-role-arn", TVM)).out.count("UPDATED") == 0
