"""runtime-role: the execution role exists before tvm-role, with what the runtime itself needs,
and docs/operations.md shows exactly the documents the command attaches."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3

from scripts.runtime_role import POLICY_NAME, runtime_policy, trust_policy
from tests.support.scripts_cli import lose_first_response, outputs

ACCOUNT = "123456789012"
OPERATIONS = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def test_creates_the_role_then_changes_nothing(aws, cli) -> None:
    first = cli("runtime-role", "--region", "us-east-1")
    assert first.code == 0, first.err
    assert outputs(first.out)["execution role ARN"] == f"arn:aws:iam::{ACCOUNT}:role/agent-memory-runtime"
    iam = boto3.client("iam", region_name="us-east-1")
    role = iam.get_role(RoleName="agent-memory-runtime")["Role"]
    assert role["AssumeRolePolicyDocument"] == trust_policy("us-east-1", ACCOUNT)
    policy = iam.get_role_policy(RoleName="agent-memory-runtime", PolicyName=POLICY_NAME)["PolicyDocument"]
    assert policy == runtime_policy("us-east-1", ACCOUNT)
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"ecr:BatchGetImage", "ecr:GetAuthorizationToken", "logs:PutLogEvents", "xray:PutTraceSegments"} <= actions
    second = cli("runtime-role", "--region", "us-east-1")
    assert second.code == 0 and "Nothing to change" in second.out


def test_a_drifted_policy_is_brought_back(aws, cli) -> None:
    assert cli("runtime-role", "--region", "us-east-1").code == 0
    iam = boto3.client("iam", region_name="us-east-1")
    iam.put_role_policy(RoleName="agent-memory-runtime", PolicyName=POLICY_NAME, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    ))  # fmt: skip
    result = cli("runtime-role", "--region", "us-east-1")
    assert result.code == 0 and "drift" in result.out
    assert iam.get_role_policy(RoleName="agent-memory-runtime", PolicyName=POLICY_NAME)["PolicyDocument"] == (
        runtime_policy("us-east-1", ACCOUNT)
    )


def test_operations_doc_shows_the_attached_documents_and_who_creates_the_role() -> None:
    text = OPERATIONS.read_text()
    section = text.split("### `runtime-role`", 1)[1].split("\n### ", 1)[0]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)\n```", section, re.S)]
    assert blocks == [trust_policy("<region>", "<account>"), runtime_policy("<region>", "<account>")]
    assert "`agentcore configure` auto-creates" not in text  # it is created at launch, if at all
    assert "a role you pass with `--execution-role` is used as-is" in text


def test_a_role_creation_whose_response_was_lost_and_retried_by_botocore_succeeds(aws, cli, monkeypatch) -> None:
    """IAM creates the role, the response is lost (a read timeout), botocore resends CreateRole
    and the retry answers EntityAlreadyExists: the role is ours and the command goes on to its
    policy (on main: 'error: AWS call CreateRole failed (EntityAlreadyExists)', no policy)."""
    import scripts.runtime_role as module

    retried = lose_first_response(monkeypatch, module, "iam", "CreateRole")
    result = cli("runtime-role", "--region", "us-east-1")
    assert retried, "CreateRole was not retried"
    assert result.code == 0, result.err
    assert outputs(result.out)["execution role ARN"] == f"arn:aws:iam::{ACCOUNT}:role/agent-memory-runtime"
    iam = boto3.client("iam", region_name="us-east-1")
    policy = iam.get_role_policy(RoleName="agent-memory-runtime", PolicyName=POLICY_NAME)["PolicyDocument"]
    assert policy == runtime_policy("us-east-1", ACCOUNT)
